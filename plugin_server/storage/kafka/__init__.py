"""Kafka adapter: aiokafka behind a trio interface, one module per role.

- `client`: the messages, error translation (aiokafka's errors become ours here and nowhere else)
  and the start/stop of every aiokafka client;
- `consumer`: a consumer-group member (getmany, commit, lag);
- `producer` and `partitioner`: batched produce, partitions as Kafka's default partitioner;
- `admin`: topics (create, delete);
- `reader`: reads without a consumer group (a whole topic, end offsets, committed offsets).

aiokafka is an asyncio library; every call crosses the trio-asyncio bridge once per batch, never
once per message (a per-message crossing measured half the throughput). Clients are created,
started and stopped inside the asyncio loop, and always stopped in `finally`: an unstopped
aiokafka client makes trio-asyncio fail the whole run.
"""

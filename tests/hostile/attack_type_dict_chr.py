# expect: runtime PluginRuntimeError
# crewAIInc/crewAI#4643: a type's __dict__ mappingproxy, with dunder names built by chr(), reaches __subclasses__
# ruff: noqa
def process_event(event, meta):
    dunder = lambda word: chr(95) * 2 + word + chr(95) * 2
    proxy = getattr(str, dunder("dict"))
    return proxy[dunder("subclasses")]

# expect: runtime PluginResourceError
# print() of a self-similar structure
# ruff: noqa
def process_event(event, meta):
    a = [1]
    for i in range(40):
        a = [a, a]
    print(a)

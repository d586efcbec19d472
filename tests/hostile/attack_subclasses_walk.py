# expect: compile
# walk object.__subclasses__() from a literal to find os._wrap_close
# ruff: noqa
def process_event(event, meta):
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == "_wrap_close":
            return cls.__init__.__globals__["system"]("id")

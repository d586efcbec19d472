"""The plugin sandbox: RestrictedPython compile policy, guards, deadlines, the PluginVM and `meta`.

Empty until the plugin VM issue; it imports nothing from `workers/` and reaches storage only
through small protocols passed in (see docs/ARCHITECTURE.md).
"""

"""Choosing a registry entry by name, with the one message every registry gives for a name it does
not hold."""


def unknown(what, name, choices):
    """The message for a name that is not one of `choices`."""
    return f"unknown {what} {name!r}; valid choices: {', '.join(sorted(choices))}"


def lookup(registry, name, what, error=ValueError):
    """registry[name] (a mapping) or name (a sequence of names), or `error` naming `what`, the
    name and the valid choices."""
    if name not in registry:
        raise error(unknown(what, name, registry))
    return registry[name] if isinstance(registry, dict) else name

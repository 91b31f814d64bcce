"""A folder saved again while a loader reads it: the interleaving, forced by a patched read."""


def save_after_reads(monkeypatch, module, reader: str, folder, new, times: int = 1) -> list:
    """Save ``new`` into ``folder`` just after ``module.reader`` (the loader's first read, of a
    manifest or config) returns, for the first ``times`` reads; returns the paths read so."""
    read = getattr(module, reader)
    calls = []

    def read_then_replaced(path):
        out = read(path)
        if len(calls) < times:
            calls.append(path)
            new.save(folder)
        return out

    monkeypatch.setattr(module, reader, read_then_replaced)
    return calls

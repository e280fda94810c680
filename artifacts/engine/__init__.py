"""The batch engine shared by the CLI, the app and the Python API: items, runner, result store."""
from artifacts.engine.items import Item, discover_images
from artifacts.engine.runner import RunSummary, run_batch
from artifacts.engine.store import Store


def open_store(out) -> Store:
    """Open the result store of an output folder (``OUT/artifacts.sqlite`` + ``OUT/items``)."""
    return Store(out)


__all__ = ["Item", "RunSummary", "Store", "discover_images", "open_store", "run_batch"]

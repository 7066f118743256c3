"""Guard for `import peft` on peft 0.16.0-0.17.1 with transformers >= 5.0 (gate `hybrid_cache_removed`).

Those peft releases do `from transformers import ..., HybridCache, ...` at import time; transformers 5.0 removed the
class (transformers PR #43168), so `import peft` fails; peft 0.18.0 fixed it (peft PR #2735). We put a placeholder
class back under that name instead of refusing to run, because pinning peft is often not the user's choice (another
package pins it) and peft only needs the name for a prefix-tuning code path of Gemma-2/3. The placeholder subclasses
`Cache`, so nothing is ever an instance of it: isinstance checks stay false, as they are on transformers 5.

Delete this module when the minimum supported peft is >= 0.18.
"""

from __future__ import annotations

import importlib.abc
import sys


def needed() -> bool:
    # imported here: `import compat` must not import compat.versions (`python -m compat.versions` runs it as __main__)
    from compat import versions

    peft = versions.installed("peft")
    return (
        peft is not None
        and versions.is_new("hybrid_cache_removed")
        and not versions.at_least("peft", "0.18.0")
        and versions.at_least("peft", "0.16.0")
    )


def patch() -> bool:
    """Make `from transformers import HybridCache` work again where needed. Returns True if it patched."""
    if not needed():
        return False
    try:  # transformers 5.0's processing_utils re-executes transformers/__init__: patch the module that stays
        import transformers.processing_utils
    except ImportError:  # it imports peft itself; if that fails, `import peft` will fail with its own message
        pass
    import transformers
    import transformers.cache_utils as cache_utils

    if getattr(cache_utils, "HybridCache", None) is not None:
        return False

    class HybridCache(cache_utils.Cache):
        """Placeholder for the class removed in transformers 5.0, so that peft 0.16-0.17 imports."""

    cache_utils.HybridCache = HybridCache
    transformers.HybridCache = HybridCache  # `from X import name` finds module attributes first
    return True


class _PatchBeforePeft(importlib.abc.MetaPathFinder):
    """Applies `patch()` the first time anything imports peft, then steps aside."""

    done = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "peft" and not self.done:
            # Stay in sys.meta_path: importlib is iterating over it, and removing ourselves would skip the next finder.
            self.done = True
            patch()
        return None  # let the normal finders import it


def install() -> None:
    """Called by `import compat`: imports nothing and reads no version; `patch()` decides when peft is imported."""
    if "peft" not in sys.modules and not any(isinstance(f, _PatchBeforePeft) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchBeforePeft())

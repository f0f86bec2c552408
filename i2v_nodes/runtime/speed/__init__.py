"""Speed levers: each setting checked and turned on around one pipeline call (:mod:`.levers`, the
package's front), and the levers themselves: step caches (:mod:`.step_cache`, calibrated by
:mod:`.magcache_calibration`), regional compile (:mod:`.block_compile`) and attention backends
(:mod:`.attention`)."""

from i2v_nodes.runtime.speed.levers import (
    State,
    check,
    levers,
)

__all__ = ["State", "check", "levers"]

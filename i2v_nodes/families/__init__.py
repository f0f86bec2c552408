"""Model families: one package per pipeline family, behind one contract.

- :mod:`.registry`: the registered families, imported by name (the engine asks it, never a family);
- :mod:`.contract`: what every family is and does;
- :mod:`.toolkit`: what several families need (safetensors headers, float8, tokenizers, frames,
  meta modules, tiny models), so that no family imports another;
- one package per family (``wan``, ``ltx_video``, ``ltx2``, ``svd``, ``animatediff``, ``i2vgen_xl``).
"""

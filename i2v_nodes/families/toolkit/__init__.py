"""The shared family toolkit: what several model families need, in one place, so that no family imports
another. Each module is named for what it holds:

- :mod:`.safetensors_header`, :mod:`.file_headers`: single files read from their headers (formats,
  parameter counts, the pack's own configs); :mod:`.file_tensors`: their tensors into weightless
  models; :mod:`.float8`: float8 weights and ComfyUI's scaled fp8; :mod:`.file_writing`: pipelines
  written as such files; :mod:`.stand_ins`: header-only stand-ins of published files;
- :mod:`.gguf_header`, :mod:`.gguf_tensors`, :mod:`.gguf_writing`: ComfyUI-GGUF's quantised files, read
  from their headers, mapped into diffusers' GGUF layers, and written (tiny files, stand-ins);
- :mod:`.tokenizers`: tokenizers for single-file text encoders;
- :mod:`.meta`: weightless modules for parameter counts and memory traces;
- :mod:`.calls`: the stock pipelines' common keyword arguments; :mod:`.frames`: frames to ComfyUI's
  IMAGE and dtype bridges for the VAE; :mod:`.options`: option widgets whose -1 means the model's own;
- :mod:`.tiny`: tiny random-weight models with offline tokenizers, built once under a lock.
"""

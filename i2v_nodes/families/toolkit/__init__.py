"""The shared family toolkit: what several model families need, kept in one place so that no family
imports another. Safetensors headers (:mod:`.safetensors_header`) and tiny random-weight models with
offline tokenizers (:mod:`.tiny`)."""

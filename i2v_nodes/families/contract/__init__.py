"""The contract every model family fulfils: what a family is (:mod:`.spec`), what it does
(:mod:`.family`), what the engine hands it and gets back (:mod:`.jobs`), how single files are seen
(:mod:`.files`) and how it continues a clip from its last frames (:mod:`.continuation`)."""

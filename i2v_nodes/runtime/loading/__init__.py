"""Loading: finding and describing models without their weights (:mod:`.models`), dtypes
(:mod:`.precision`), loading and placing pipelines (:mod:`.placement`), the process-wide cache
(:mod:`.cache`) and LoRA adapters (:mod:`.lora`)."""

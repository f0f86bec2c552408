class Negate:
    CATEGORY = "test/second"
    DESCRIPTION = "Negates an integer."
    RETURN_TYPES = ("INT",)
    OUTPUT_TOOLTIPS = ("the negated value",)
    FUNCTION = "negate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True, "tooltip": "value to negate"})}}

    def negate(self, value):
        return (-value,)


NODE_CLASS_MAPPINGS = {"Negate": Negate}
NODE_DISPLAY_NAME_MAPPINGS = {"Negate": "Negate (second pack)"}

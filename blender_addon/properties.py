"""Per-scene input choice for the sidebar's buttons (the operators take the same as their own properties)."""

import bpy
from bpy.props import EnumProperty, PointerProperty, StringProperty

SOURCES = (
    ("AUTO", "Auto", "The file path if set, else the image named or shown in an Image Editor, else the camera"),
    ("FILE", "File", "An image file"),
    ("IMAGE", "Image", "An image data-block (by name; empty: the Image Editor's image)"),
    ("CAMERA", "Camera Render", "Render the scene's camera at the scene's resolution (camera-exact meshes)"),
)


class BetterDepthInputs(bpy.types.PropertyGroup):
    source: EnumProperty(name="Source", items=SOURCES, default="AUTO")
    image: PointerProperty(name="Image", type=bpy.types.Image, description="Empty: the Image Editor's image")
    filepath: StringProperty(name="File", subtype="FILE_PATH")
    sequence_directory: StringProperty(name="Frames", subtype="DIR_PATH",
                                       description="The image sequence's folder (frames in name order)")

    def operator_options(self) -> dict:
        """The job operators' input properties for this choice."""
        return {"source": self.source, "filepath": self.filepath if self.source in ("AUTO", "FILE") else "",
                "image_name": self.image.name if self.image and self.source in ("AUTO", "IMAGE") else ""}


CLASSES = (BetterDepthInputs,)

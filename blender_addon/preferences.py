"""Add-on preferences: how to reach the engine, and the model defaults every job starts from."""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .core.engine_setup import ENV_VARIABLE
from .depth_store import STORAGE


def get_preferences(context=None) -> "BetterDepthPreferences":
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


class BetterDepthPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    engine_mode: EnumProperty(
        name="Engine",
        items=(
            ("MANAGED", "Managed", "Start the engine on this computer on first use, stop it when Blender quits"),
            ("EXTERNAL", "External", "Use an engine that already runs, e.g. on a GPU box (URL + token)"),
        ),
        default="MANAGED",
    )
    engine_python: StringProperty(
        name="Engine Python", subtype="FILE_PATH",
        description=f"The engine environment's Python (empty: ${ENV_VARIABLE}, the project's .venv, "
                    "or `betterdepth` on PATH)",
    )
    project_dir: StringProperty(
        name="Project Folder", subtype="DIR_PATH",
        description="A BetterDepth checkout whose .venv holds the engine (after `make setup`)",
    )
    url: StringProperty(name="URL", default="http://127.0.0.1:8765", description="The external engine's address")
    token: StringProperty(name="Token", subtype="PASSWORD", description="The external engine's bearer token")
    release_before_render: BoolProperty(
        name="Release Before Render", default=True,
        description="When Blender starts a render, ask an engine on this computer to unload its models, so the "
                    "render gets the GPU memory (the next job loads them again)",
    )
    depth_storage: EnumProperty(
        name="Depth Storage", items=STORAGE, default="PACKED",
        description="Where a created object keeps its depth, so Re-run works after the engine dropped its job",
    )

    base: StringProperty(name="Base Model", default="default",
                         description="'default', e.g. depth-anything-v2-small, a folder or a hub id (engine side)")
    refiner: StringProperty(name="Refiner", default="default", description="'default', 'none', 'marigold' or a folder")
    steps: IntProperty(name="Steps", default=0, min=0, max=1000, description="Denoising steps (0: the refiner's own)")
    ensemble_size: IntProperty(name="Ensemble", default=1, min=1, max=64, description="Refined predictions averaged")
    processing_resolution: IntProperty(name="Resolution", default=0, min=0, max=8192,
                                       description="The refiner's long side in pixels (0: the refiner's own)")
    seed: IntProperty(name="Seed", default=0, min=0)
    far_near_ratio: FloatProperty(name="Far/Near", default=10.0, min=1.01, max=1000.0,
                                  description="Depth range of the scene for relative depth: far = near x this")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "engine_mode", expand=True)
        if self.engine_mode == "MANAGED":
            layout.prop(self, "engine_python")
            layout.prop(self, "project_dir")
        else:
            layout.prop(self, "url")
            layout.prop(self, "token")
        layout.prop(self, "release_before_render")
        layout.prop(self, "depth_storage")
        row = layout.row(align=True)
        row.operator("betterdepth.check_setup", icon="CHECKMARK")
        row.operator("betterdepth.engine_start", icon="PLAY")
        row.operator("betterdepth.engine_stop", icon="PAUSE")
        column = layout.column(heading="Model Defaults")
        for name in ("base", "refiner", "steps", "ensemble_size", "processing_resolution", "seed", "far_near_ratio"):
            column.prop(self, name)

    def estimate_options(self) -> dict:
        """The `estimate` section of a job request; zero means the model's own default."""
        options = {"base": self.base, "refiner": self.refiner, "ensemble_size": self.ensemble_size,
                   "seed": self.seed, "depth_range_ratio": self.far_near_ratio}
        if self.steps:
            options["steps"] = self.steps
        if self.processing_resolution:
            options["processing_resolution"] = self.processing_resolution
        return options


CLASSES = (BetterDepthPreferences,)

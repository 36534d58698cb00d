"""Sidebar panel for the active object BetterDepth made: its provenance, scene fit, and Re-run."""

from __future__ import annotations

from pathlib import Path

import bpy

from .depth_store import describe
from .scene_align import ERROR_PROPERTY
from .scene_build import PARAMETERS_PROPERTY, read_parameters

TEXT = {"create_mesh": "Mesh", "create_relief": "Relief", "displacement": "Displaced plane",
        "mesh_sequence": "Sequence frame"}
SOURCES = {"CAMERA": "camera render", "FILE": "file", "IMAGE": "image", "SEQUENCE": "frames"}


class ResultPanel:
    bl_region_type = "UI"
    bl_category = "BetterDepth"
    bl_label = "Selected Result"

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and PARAMETERS_PROPERTY in obj

    def draw(self, context):
        obj = context.active_object
        parameters = read_parameters(obj)
        provenance = parameters.get("provenance", {})
        layout = self.layout
        operator = parameters.get("operator", "")
        column = layout.column(align=True)
        source = provenance.get("image", {}).get("source", "?")
        column.label(text=f"{TEXT.get(operator, operator)} from {SOURCES.get(source, source.title())}", icon="INFO")
        models = provenance.get("models", {})
        base = models.get("base") or "?"
        column.label(text="Base: external depth" if models.get("external_depth")
                     else f"Base: {Path(base).parent.name}/{Path(base).name}")
        column.label(text=f"Steps {provenance.get('steps')}, seed {provenance.get('seed')}, "
                          f"ensemble {provenance.get('ensemble_size')}")
        column.label(text=f"Resolution {provenance.get('processing_resolution')} px")
        column.label(text=f"Engine {provenance.get('engine_version')}, job {str(provenance.get('engine_job'))[:8]}")
        if operator in ("create_mesh", "create_relief", "displacement"):
            column.label(text=f"Depth kept {describe(parameters.get('kept_depth'))}")
        known = parameters.get("known_distance")
        if known:
            to = "focus plane" if known["measure"] == "AXIS" else "point"
            column.label(text=f"Known distance {known['distance']:.3g} to {to} at pixel "
                              f"({known['pixel'][0]:g}, {known['pixel'][1]:g})", icon="DRIVER_DISTANCE")
        if ERROR_PROPERTY in obj:
            column.label(text=f"Scene fit: {obj[ERROR_PROPERTY]:.1%} error", icon="SNAP_ON")
        elif (parameters.get("alignment") or {}).get("error"):
            column.label(text="Not aligned to the scene", icon="ERROR")
        if operator == "create_mesh":
            layout.operator("betterdepth.set_known_distance", icon="DRIVER_DISTANCE")
        if operator in ("create_mesh", "create_relief", "displacement"):
            rerun = layout.operator(f"betterdepth.{operator}", text="Re-run", icon="FILE_REFRESH")
            rerun.rerun_object = obj.name


class SequencePanel:
    bl_region_type = "UI"
    bl_category = "BetterDepth"
    bl_label = "Image Sequence"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        inputs = context.scene.betterdepth_inputs
        self.layout.prop(inputs, "sequence_directory")
        row = self.layout.row(align=True)
        for output, text in (("OBJECTS", "Mesh per Frame"), ("SHAPE_KEYS", "Shape Keys")):
            button = row.operator("betterdepth.mesh_sequence", text=text, icon="SEQUENCE")
            button.directory, button.output = inputs.sequence_directory, output


CLASSES = (type("BETTERDEPTH_PT_result_view3d", (ResultPanel, bpy.types.Panel), {"bl_space_type": "VIEW_3D"}),
           type("BETTERDEPTH_PT_sequence_view3d", (SequencePanel, bpy.types.Panel), {"bl_space_type": "VIEW_3D"}))

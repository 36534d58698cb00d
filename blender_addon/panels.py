"""Sidebar panels (tab "BetterDepth") in the 3D Viewport and the Image Editor: jobs, progress, the engine box."""

from __future__ import annotations

import bpy

from . import engine
from .operators import ActiveJob, EngineStatus
from .preferences import get_preferences


def _gigabytes(value) -> str:
    return f"{value / 2**30:.1f} GB" if value else "-"


class BetterDepthPanel:
    bl_region_type = "UI"
    bl_category = "BetterDepth"


class JobsPanel(BetterDepthPanel):
    bl_label = "BetterDepth"

    def draw(self, context):
        layout = self.layout
        job = ActiveJob.job
        if ActiveJob.running():
            progress = job.progress
            layout.label(text=ActiveJob.label, icon="TIME")
            if hasattr(layout, "progress"):  # 4.0+
                layout.progress(factor=progress.fraction, type="BAR", text=progress.message)
            else:
                layout.label(text=f"{progress.message} ({progress.fraction:.0%})")
            layout.operator("betterdepth.cancel", icon="CANCEL")
            return
        inputs = context.scene.betterdepth_inputs
        layout.prop(inputs, "source")
        if inputs.source in ("AUTO", "IMAGE"):
            layout.prop(inputs, "image")
        if inputs.source in ("AUTO", "FILE"):
            layout.prop(inputs, "filepath")
        column = layout.column(align=True)
        for idname, icon in (("estimate_depth", "IMAGE_ZDEPTH"), ("create_mesh", "MESH_GRID"),
                             ("create_relief", "MOD_SOLIDIFY"), ("displacement", "MOD_DISPLACE")):
            operator = column.operator(f"betterdepth.{idname}", icon=icon)
            for name, value in inputs.operator_options().items():
                setattr(operator, name, value)


class EnginePanel(BetterDepthPanel):
    bl_label = "Engine"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        prefs = get_preferences(context)
        layout.prop(prefs, "engine_mode", expand=True)
        row = layout.row(align=True)
        if prefs.engine_mode == "MANAGED":
            row.operator("betterdepth.engine_start", icon="PLAY")
            row.operator("betterdepth.engine_stop", icon="PAUSE")
            row.operator("betterdepth.engine_restart", icon="FILE_REFRESH")
        row = layout.row(align=True)
        row.operator("betterdepth.engine_status", icon="INFO")
        row.operator("betterdepth.check_setup", icon="CHECKMARK")
        layout.operator("betterdepth.release_memory", icon="TRASH")
        health = EngineStatus.health
        box = layout.box()
        if health:
            memory = health.get("memory", {})
            box.label(text=f"Engine {health.get('engine_version')} on {health.get('device')}")
            box.label(text=f"RAM {_gigabytes(memory.get('rss_bytes'))}, "
                           f"GPU {_gigabytes(memory.get('cuda_allocated_bytes'))}")
            models = ", ".join(model.get("name", "?") for model in health.get("loaded_models", [])) or "none"
            box.label(text=f"Models: {models}")
        else:
            box.label(text=EngineStatus.error or "Press Refresh Status.")
        if prefs.engine_mode == "MANAGED":
            layout.label(text=f"Log: {engine.settings(context).log_path}")


def _panel(base, space: str, suffix: str, parent: str = ""):
    attributes = {"bl_space_type": space, "bl_idname": f"BETTERDEPTH_PT_{base.__name__.lower()}_{suffix}"}
    if parent:
        attributes["bl_parent_id"] = parent
    return type(attributes["bl_idname"], (base, bpy.types.Panel), attributes)


CLASSES = tuple(
    panel
    for space, suffix in (("VIEW_3D", "view3d"), ("IMAGE_EDITOR", "image"))
    for panel in (_panel(JobsPanel, space, suffix), _panel(EnginePanel, space, suffix))
)

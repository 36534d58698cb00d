"""Mesh Sequence: one mesh per frame of an image sequence, all in the scale of one reference frame.

A depth model's disparity is affine-invariant per frame, and the engine lifts each frame with its own depth
range, so per-frame meshes of a static shot breathe. Here every frame's disparity is fitted (scale and shift,
robustly) to the reference frame's, and lifted with the reference frame's own depth range
(core.alignment.chain_to_reference). Frames run one after another with progress; a failure or Ctrl+C keeps
the finished frames. Each mesh is visible (viewport and render) on its own scene frame only.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from functools import partial
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty

from . import engine, scene_align, scene_build
from .core.alignment import AlignmentError, align_vertices, chain_to_reference, engine_lift
from .core.camera import params_from_intrinsics
from .core.jobs import EngineJob, JobError, JobRequest
from .core.mesh_arrays import load_mesh_npz, mesh_buffers
from .core.provenance import file_sha256, record
from .inputs import ENGINE_SUFFIXES
from .preferences import get_preferences


def sequence_files(folder: Path, first: int, count: int) -> list[Path]:
    """The frames: the folder's images (formats the engine reads) sorted by name, from `first`, `count` of them
    (0: all)."""
    if not folder.is_dir():
        raise JobError("BAD_IMAGE", f"No folder at '{folder}'.", "Choose the folder that holds the frames.")
    files = sorted(path for path in folder.iterdir() if path.suffix.lower() in ENGINE_SUFFIXES)
    files = files[first:first + count] if count else files[first:]
    if not files:
        raise JobError("BAD_IMAGE", f"No frames in '{folder}' from number {first}.",
                       "Frames are PNG, JPEG, TIFF, BMP or WebP files, in name order.")
    return files


def _visible_on_frame_only(obj: bpy.types.Object, frame: int) -> None:
    """Keyframes that show the object on `frame` alone (booleans hold their keyed value: hidden before and
    after)."""
    for key_frame, hidden in ((frame - 1, True), (frame, False), (frame + 1, True)):
        obj.hide_viewport = obj.hide_render = hidden
        obj.keyframe_insert("hide_viewport", frame=key_frame)
        obj.keyframe_insert("hide_render", frame=key_frame)


class BETTERDEPTH_OT_mesh_sequence(bpy.types.Operator):
    """A mesh per frame of an image sequence (a folder of frames) in one consistent scale: every frame is
    fitted to the reference frame's depth. Each mesh shows on its own scene frame"""

    bl_idname = "betterdepth.mesh_sequence"
    bl_label = "Mesh Sequence"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(name="Frames Folder", subtype="DIR_PATH")
    first: IntProperty(name="First", default=0, min=0, description="Index of the first frame (name order)")
    count: IntProperty(name="Frames", default=0, min=0, description="How many frames (0: all)")
    reference: IntProperty(name="Reference", default=0, min=0,
                           description="The frame (counted from First) whose scale the others follow")
    consistent_scale: BoolProperty(name="Consistent Scale", default=True,
                                   description="Fit every frame to the reference frame (off: each frame's own "
                                               "depth range, as single images get)")
    min_angle_deg: FloatProperty(name="Cut Angle", default=4.0, min=0.0, max=89.0)
    fov_deg: FloatProperty(name="Field of View", default=0.0, min=0.0, max=179.0,
                           description="Across the longer side (0: the frames' EXIF, else 55)")
    frame_start: IntProperty(name="Start Frame", default=1, description="The scene frame of the first mesh")

    def invoke(self, context, event):
        if self.directory:
            return self.execute(context)
        context.window_manager.fileselect_add(self)  # pick the frames' folder, then execute
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            frames = sequence_files(Path(bpy.path.abspath(self.directory)), self.first, self.count)
            if self.reference >= len(frames):
                raise JobError("BAD_PARAMS", f"Reference frame {self.reference} is past the {len(frames)} frames.",
                               "Pick a reference among the frames.")
        except JobError as error:
            self.report({"ERROR"}, f"BetterDepth: {error.report()}")
            return {"CANCELLED"}
        folder = Path(tempfile.mkdtemp(prefix="sequence-", dir=engine.user_dir()))
        window_manager = context.window_manager
        window_manager.progress_begin(0, len(frames))
        built: list[bpy.types.Object] = []
        try:
            return self._run(context, frames, folder, built)
        except KeyboardInterrupt:  # Ctrl+C in background mode: the finished frames stay
            self.report({"WARNING"}, f"BetterDepth: sequence stopped; {len(built)} of {len(frames)} frames built.")
            return {"FINISHED"} if built else {"CANCELLED"}
        finally:
            window_manager.progress_end()
            shutil.rmtree(folder, ignore_errors=True)

    def _job(self, context, path: Path, folder: Path) -> dict:
        prefs = get_preferences(context)
        mesh = {"colors": "normal", "min_angle_deg": self.min_angle_deg, "far_near_ratio": prefs.far_near_ratio}
        if self.fov_deg:
            mesh["fov_deg"] = self.fov_deg
        request = JobRequest("mesh", path, estimate=prefs.estimate_options(), mesh=mesh)
        job = EngineJob(partial(engine.connect, engine.settings(context)), request, folder)
        files = job.run()
        return {"files": files, "job_id": job.job_id, "request": {"estimate": request.estimate, "mesh": mesh}}

    def _run(self, context, frames: list[Path], folder: Path, built: list) -> set[str]:
        order = [self.reference] + [index for index in range(len(frames)) if index != self.reference]
        reference_disparity = reference_lift = camera = None
        label = Path(bpy.path.abspath(self.directory)).name or "sequence"
        depths = {}
        for done, index in enumerate(order):
            path = frames[index]
            print(f"BetterDepth sequence: frame {index + 1}/{len(frames)} ({path.name})", flush=True)
            try:
                result = self._job(context, path, folder / f"{index:05d}")
            except JobError as error:
                self.report({"ERROR"}, f"BetterDepth: frame {path.name}: {error.report()} "
                                       f"({len(built)} frames built and kept)")
                return {"FINISHED"} if built else {"CANCELLED"}
            files = result["files"]
            meta = json.loads(files["meta.json"].read_text())
            disparity = np.load(files["disparity.npy"])
            arrays = load_mesh_npz(files["mesh.npz"])
            if reference_disparity is None:
                reference_disparity, reference_lift = disparity, engine_lift(meta["mesh"]["depth_range"])
                intrinsics = meta["mesh"]["camera"]
                camera = scene_build.new_camera(context, f"{label} camera", params_from_intrinsics(intrinsics),
                                                int(intrinsics["width"]), int(intrinsics["height"]))
                context.view_layer.update()
            fit = None
            if self.consistent_scale:
                try:
                    fit = chain_to_reference(disparity, reference_disparity, reference_lift) \
                        if index != self.reference else reference_lift
                    arrays = {**arrays, "vertices": align_vertices(arrays["vertices"], meta["mesh"]["camera"],
                                                                   disparity, fit)[0]}
                except (AlignmentError, ValueError, IndexError) as error:
                    self.report({"WARNING"}, f"BetterDepth: frame {path.name} keeps its own scale ({error}).")
                    fit = None
            obj = self._frame_object(context, f"{label} {index:04d}", arrays, camera)
            if fit is not None:
                scene_align.refresh_normal_colors(obj.data, scene_build.NORMAL_COLORS)
            lift = fit or engine_lift(meta["mesh"]["depth_range"])
            depths[index] = lift.depth(disparity)  # the frame's depth map in the scale its mesh got
            parameters = {
                "source": "SEQUENCE", "operator": "mesh_sequence", "label": label, "frame_index": index,
                "reference_index": self.reference, "engine_job": result["job_id"], "request": result["request"],
                "engine": meta, "sequence_fit": None if fit is None else fit.to_dict(),
                "provenance": record(task="mesh", source="SEQUENCE", source_path=str(path.resolve()),
                                     sent_sha256=file_sha256(path), camera={"name": camera.name},
                                     request=result["request"], meta=meta, engine_job=result["job_id"]),
            }
            obj[scene_build.PARAMETERS_PROPERTY] = json.dumps(parameters, sort_keys=True, default=str)
            _visible_on_frame_only(obj, self.frame_start + index)
            built.append(obj)
            context.window_manager.progress_update(done + 1)
        # Scale change between neighbouring frames: the median per-pixel depth ratio.
        changes = [abs(float(np.nanmedian(depths[index] / depths[index - 1])) - 1) for index in range(1, len(frames))]
        largest = max(changes, default=0.0)
        context.scene.frame_start, context.scene.frame_end = self.frame_start, self.frame_start + len(frames) - 1
        self.report({"INFO"}, f"BetterDepth: {len(built)} frame meshes from '{label}'; largest frame-to-frame "
                              f"scale change (median depth ratio) {largest:.2%}")
        return {"FINISHED"}

    @staticmethod
    def _frame_object(context, name: str, arrays: dict, camera) -> bpy.types.Object:
        mesh = scene_build.build_mesh(name, mesh_buffers(arrays))
        obj = scene_build.link_object(context, name, mesh)
        obj.matrix_world = camera.matrix_world.copy()
        return obj


CLASSES = (BETTERDEPTH_OT_mesh_sequence,)

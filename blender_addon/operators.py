"""Operators: Estimate Depth, Create Mesh, Create Relief, Displacement, Cancel, and the engine box's buttons.

Every job operator has two paths over the same job:
- invoke (the UI): a worker thread does the HTTP; a modal timer drains its events into the panel's progress
  bar, the status bar and the header; Esc or the Cancel button cancels the job on the engine.
- execute (background mode `blender -b`, scripts, the batch): the same job, followed on the main thread
  with progress printed, because timers never fire there.
Blender data is only created on the main thread, after the job succeeded; a failure while building removes
what was built, so a failed or cancelled job leaves the scene unchanged.
"""

import dataclasses
import json
import shutil
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import depth_store, engine, inputs, rerun, scene_align, scene_build
from .core.alignment import AlignmentError
from .core.camera import params_from_intrinsics
from .core.engine_setup import Finding, check_setup
from .core.jobs import RESULT_FILES, DepthJobs, EngineJob, JobError, JobRequest
from .core.mesh_arrays import MeshFileError, grid_plane, load_mesh_npz, mesh_buffers
from .core.provenance import file_sha256, record
from .known_distance import apply_known_distance
from .preferences import get_preferences
from .properties import SOURCES



DEPTH_JOBS = DepthJobs()


def _addon_version() -> str:
    import addon_utils

    info = addon_utils.module_bl_info(sys.modules[__package__])  # 4.2+: from the extension's manifest
    return ".".join(str(part) for part in info.get("version", ()))


ADDON_VERSION = _addon_version()


class ActiveJob:
    """The job the UI follows (one at a time), for the panels' progress bar and Cancel button."""

    job: EngineJob | None = None
    label: str = ""

    @classmethod
    def running(cls) -> bool:
        return cls.job is not None and not cls.job.progress.state.final


def begin_modal_ui(operator, context) -> None:
    """What a modal operator following a job needs: a 0.1 s timer, its modal handler and the progress bar."""
    window_manager = context.window_manager
    operator._timer = window_manager.event_timer_add(0.1, window=context.window)
    window_manager.modal_handler_add(operator)
    window_manager.progress_begin(0, 100)


def end_modal_ui(operator, context) -> None:
    """The reverse of `begin_modal_ui`, the status text cleared, and the add-on free for the next job."""
    window_manager = context.window_manager
    window_manager.event_timer_remove(operator._timer)
    window_manager.progress_end()
    if context.workspace is not None:  # None while a file is being loaded
        context.workspace.status_text_set(None)
    ActiveJob.job = None


@dataclass
class Plan:
    """What the main thread prepared before the job, and needs again to build the result."""

    source: str
    image_path: Path
    folder: Path  # the job's own temporary folder: inputs and downloaded results
    label: str
    camera_name: str = ""  # the rendered camera (camera-exact meshes)
    image_name: str = ""  # the source image data-block, reused for the material
    sections: dict = field(default_factory=dict)
    depth_key: tuple | None = None  # recognises this input and models again (DepthJobs)
    job_id: str = ""  # the engine's job, once it succeeded
    source_path: str = ""  # the user's file (an image data-block's file), for provenance
    image_sha256: str = ""  # of the file sent to the engine
    camera: dict = field(default_factory=dict)  # the rendered camera: name, parameters, world matrix
    rerun_of: str = ""  # the object a Re-run rebuilds
    stored_alignment: dict | None = None  # its scene fit (same depth: applied again)
    kept_depth: dict | None = None  # where the object's disparity is kept with the .blend (depth_store)
    stored_meta: dict = field(default_factory=dict)  # a re-run object's engine meta.json (its models, image)
    depth_from_job: str = ""  # the engine job whose models made a re-run object's depth
    known_distance: dict | None = None  # a re-run mesh's known distance (known_distance.py), applied again


def set_properties(operator) -> dict:
    """The operator's properties that were set (by the caller, invoke or a dialog), to invoke it again with."""
    return {name: getattr(operator, name) for name in operator.properties.bl_rna.properties.keys()
            if name != "rna_type" and operator.properties.is_property_set(name)}


def _report_error(operator, error: Exception) -> set[str]:
    job_error = JobError.from_exception(error)
    level = "WARNING" if job_error.code == "CANCELLED" and not bpy.app.background else "ERROR"
    operator.report({level}, f"BetterDepth: {job_error.report()}")
    return {"CANCELLED"}


class EngineJobOperator:
    """Shared by the four job operators; subclasses set `task` and implement `sections` and `build`."""

    bl_options = {"REGISTER", "UNDO"}
    task = ""

    source: EnumProperty(name="Source", items=SOURCES, default="AUTO")
    filepath: StringProperty(name="Image File", subtype="FILE_PATH")
    image_name: StringProperty(name="Image", description="An image data-block's name")
    reuse_depth: BoolProperty(name="Reuse Depth", default=True,
                              description="Use the depth of the last job on this unchanged image with the same "
                                          "models, if the engine still has it, instead of running the models")
    base_prediction: StringProperty(name="External Depth", subtype="FILE_PATH",
                                    description="Plug-and-play: a disparity map from any depth model (.npy, 16-bit "
                                                "PNG or EXR, the image's size) used instead of the base model")
    rerun_object: StringProperty(name="Re-run Object", options={"HIDDEN", "SKIP_SAVE"},
                                 description="Rebuild this object on its stored depth (no model run) with these "
                                             "options; it keeps its name, place and materials")
    confirmed: BoolProperty(options={"HIDDEN", "SKIP_SAVE"},
                            description="Re-run: the options were confirmed in the dialog (invoke starts the job)")
    from_dialog: BoolProperty(options={"HIDDEN", "SKIP_SAVE"},
                              description="Set by invoke before Re-run's dialog: its OK invokes the job again")

    # -- to implement -------------------------------------------------------------------------------------
    def sections(self, context, plan: Plan) -> dict:
        """The job request's sections beyond `estimate` (mesh, relief, results)."""
        return {}

    def build(self, context, plan: Plan, files: dict, created: scene_build.Created) -> str:
        """Create the Blender data from the result files; returns a one-line summary."""
        raise NotImplementedError

    # -- preparing ----------------------------------------------------------------------------------------
    def _source(self, context) -> str:
        if self.source != "AUTO":
            return self.source
        if self.filepath:
            return "FILE"
        if self.image_name or inputs.active_image(context) is not None:
            return "IMAGE"
        return "CAMERA"

    def prepare(self, context) -> tuple[Plan, JobRequest]:
        source = self._source(context)
        folder = Path(tempfile.mkdtemp(prefix="job-", dir=engine.user_dir()))
        try:
            plan = Plan(source, Path(), folder, label="")
            input_key = None
            if self.rerun_object:
                plan, reuse_job = self._prepare_rerun(context, plan)
            elif source == "FILE":
                plan.image_path = inputs.checked_file(self.filepath, folder)
                plan.label = Path(bpy.path.abspath(self.filepath)).stem
                input_key = inputs.file_key(Path(bpy.path.abspath(self.filepath)))
            elif source == "IMAGE":
                image = bpy.data.images.get(self.image_name) if self.image_name else inputs.active_image(context)
                if image is None:
                    raise JobError("BAD_IMAGE", f"No image named '{self.image_name}'." if self.image_name
                                   else "No image is open in an Image Editor.", "Open or pick an image.")
                plan.image_name, plan.image_path = image.name, inputs.image_file(image, folder)
                plan.label = Path(image.name).stem
                input_key = inputs.image_key(image)
            else:
                plan.image_path = inputs.render_camera(context.scene, folder)
                plan.camera_name = plan.label = context.scene.camera.name
            if self.rerun_object:
                pass  # provenance comes from the object
            elif source == "FILE":
                plan.source_path = str(Path(bpy.path.abspath(self.filepath)).resolve())
            elif source == "IMAGE" and bpy.data.images[plan.image_name].filepath:
                image = bpy.data.images[plan.image_name]
                plan.source_path = str(Path(bpy.path.abspath(image.filepath, library=image.library)).resolve())
            if plan.camera_name and not self.rerun_object:
                camera = bpy.data.objects[plan.camera_name]
                plan.camera = {"name": camera.name, "matrix_world": [list(row) for row in camera.matrix_world],
                               "blender_camera": scene_build.camera_params(camera, context.scene).to_request(),
                               "resolution": [context.scene.render.resolution_x, context.scene.render.resolution_y]}
            if plan.image_path.is_file():
                plan.image_sha256 = file_sha256(plan.image_path)
            prefs = get_preferences(context)
            estimate = plan.sections["estimate"] if self.rerun_object else prefs.estimate_options()
            plan.sections = {**plan.sections, "estimate": estimate, **self.sections(context, plan)}
            if self.rerun_object and "mesh" in plan.sections and "blender_camera" in plan.camera:
                # The depth was lifted for the camera as it was at the render, not as it is now.
                plan.sections["mesh"]["blender_camera"] = plan.camera["blender_camera"]
            elif self.rerun_object and "mesh" in plan.sections and not plan.image_path.is_file():
                # A photo's EXIF focal, for a kept depth sent without its image: the same camera as before.
                focal_35mm = plan.stored_meta.get("image", {}).get("focal_length_35mm")
                if focal_35mm and not {"fov_deg", "focal_px"} & set(plan.sections["mesh"]):
                    plan.sections["mesh"]["focal_35mm"] = focal_35mm
            results = plan.sections.pop("results", ())
            settings = engine.settings(context)
            plan.depth_key = DepthJobs.key((settings.mode, settings.url if settings.mode == "EXTERNAL" else ""),
                                           input_key, plan.sections["estimate"])
            base_prediction = None
            if self.base_prediction:
                base_prediction = Path(bpy.path.abspath(self.base_prediction))
                if not base_prediction.is_file():
                    raise JobError("BAD_DEPTH", f"No depth file at '{base_prediction}'.",
                                   "Choose an existing .npy, 16-bit PNG or EXR disparity file.")
                plan.depth_key = None  # the depth comes from that file, not from the models: never reused
            if not self.rerun_object:
                reuse_job = DEPTH_JOBS.get(plan.depth_key) if self.reuse_depth else None
            kept = None
            if plan.kept_depth:  # the depth kept with the .blend: needs no engine job and no model
                kept, reuse_job = folder / "kept_disparity.npy", None
                np.save(kept, depth_store.load(plan.kept_depth, plan.rerun_of))
            elif self.task != "estimate" and prefs.depth_storage != "ENGINE":
                results = tuple(results or RESULT_FILES[self.task])
                results += ("disparity.npy",) * ("disparity.npy" not in results)  # to keep with the .blend
            request = JobRequest(self.task, plan.image_path, results=results, reuse_job=reuse_job,
                                 base_prediction=base_prediction, reuse_disparity=kept, **plan.sections)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return plan, request

    def operator_name(self) -> str:
        """create_mesh, create_relief, ... (an instance's bl_idname reads BETTERDEPTH_OT_create_mesh)."""
        return self.bl_idname.split(".")[-1].lower().removeprefix("betterdepth_ot_")

    def _prepare_rerun(self, context, plan: Plan) -> tuple[Plan, str]:
        """The plan of the job that made the object, its depth's engine job; the options are this call's."""
        old, stored = rerun.stored_parameters(self.rerun_object)
        if getattr(self, "compare_base", False):
            raise JobError("BAD_PARAMS", "Compare with Base makes a new pair of meshes; Re-run rebuilds one.",
                           "Run Create Mesh with Compare with Base on the image instead.")
        provenance = stored.get("provenance", {})
        if stored.get("operator", self.operator_name()) != self.operator_name():
            raise JobError("NOT_RERUNNABLE", f"'{old.name}' was made by {stored['operator']}, not by this operator.",
                           "Use the sidebar's Re-run on the selected object.")
        plan.source, plan.label, plan.rerun_of = stored["source"], stored.get("label") or old.name, old.name
        plan.image_path = rerun.source_image(stored)
        plan.source_path = provenance.get("image", {}).get("path") or ""
        plan.camera = dict(provenance.get("camera") or {})
        if plan.camera.get("name") and plan.camera["name"] in bpy.data.objects:
            plan.camera_name = plan.camera["name"]
        plan.image_name = rerun.material_image(old)
        plan.stored_alignment = stored.get("alignment")
        plan.kept_depth, plan.stored_meta = stored.get("kept_depth"), stored.get("engine") or {}
        plan.depth_from_job = provenance.get("depth_from_job") or stored["engine_job"]
        plan.known_distance = stored.get("known_distance")
        plan.sections = {"estimate": stored["request"]["estimate"]}
        return plan, stored["engine_job"]

    def _start(self, context) -> tuple[EngineJob, Plan]:
        plan, request = self.prepare(context)
        job = EngineJob(partial(engine.connect, engine.settings(context)), request, plan.folder / "results")
        job.start()
        return job, plan

    # -- finishing ----------------------------------------------------------------------------------------
    def _conclude(self, context, plan: Plan, job: EngineJob, kind: str, payload) -> set[str]:
        try:
            if kind != "succeeded":
                return _report_error(self, engine.explain(payload, engine.settings(context)))
            plan.job_id = job.job_id
            DEPTH_JOBS.remember(plan.depth_key, job.job_id)
            created = scene_build.Created()
            kept_now = None
            try:
                if job.request.reuse_disparity is not None:
                    _with_stored_estimate(payload["meta.json"], plan.stored_meta, plan.depth_from_job)
                elif self.task != "estimate" and "disparity.npy" in payload:
                    plan.kept_depth = kept_now = depth_store.keep(
                        np.load(payload["disparity.npy"], allow_pickle=False), plan.label,
                        get_preferences(context).depth_storage, created)
                summary = self.build(context, plan, payload, created)
                if plan.rerun_of:
                    rerun.replace(bpy.data.objects[plan.rerun_of], created)
            except Exception as error:  # noqa: BLE001 - whatever failed, undo what was built, report it
                created.remove_all()
                depth_store.forget_file(kept_now)
                traceback.print_exc()  # the details go to the console, the user gets one line
                known = isinstance(error, (JobError, MeshFileError))
                detail = str(error) if known else f"{type(error).__name__}: {error}"
                return _report_error(self, JobError("RESULT_ERROR", f"Could not build the result ({detail}).",
                                                    "The scene is unchanged; the system console has the details."))
            self.report({"INFO"}, f"BetterDepth: {summary}" + (" (depth reused: no model run)" if job.reused else ""))
            return {"FINISHED"}
        finally:
            shutil.rmtree(plan.folder, ignore_errors=True)

    # -- synchronous path ---------------------------------------------------------------------------------
    def execute(self, context):
        if self.from_dialog and context.window is not None:
            # Re-run's dialog ended (OK): invoke again, so the job runs like any other, with the UI responsive.
            return getattr(bpy.ops.betterdepth, self.operator_name())(
                "INVOKE_DEFAULT", **{**set_properties(self), "from_dialog": False, "confirmed": True})
        try:
            job, plan = self._start(context)
        except Exception as error:  # noqa: BLE001 - reported, never a traceback
            return _report_error(self, error)
        ActiveJob.job, ActiveJob.label = job, plan.label
        try:
            def show(progress):
                print(f"BetterDepth {plan.label}: {progress.message} ({progress.fraction:.0%})", flush=True)

            try:
                kind, payload = job.poll(show, lambda path: None, block=True)
            except KeyboardInterrupt:  # Ctrl+C in `blender -b`: stop the engine's work too
                job.cancel()
                shutil.rmtree(plan.folder, ignore_errors=True)
                raise
            job.join()
            return self._conclude(context, plan, job, kind, payload)
        finally:
            ActiveJob.job = None

    # -- interactive path ---------------------------------------------------------------------------------
    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        if self.rerun_object and not self.confirmed:  # the object's options, to change in a dialog; then execute
            try:
                _, stored = rerun.stored_parameters(self.rerun_object)
            except JobError as error:
                return _report_error(self, error)
            names = self.properties.bl_rna.properties.keys()
            for section in ("mesh", "relief"):
                for name, value in (stored["request"].get(section) or {}).items():
                    if name in names and name not in ("source", "filepath", "image_name"):
                        try:
                            setattr(self, name, value)
                        except (TypeError, ValueError):
                            pass  # e.g. an option this version no longer offers
            self.from_dialog = True
            return context.window_manager.invoke_props_dialog(self)
        if ActiveJob.running():
            self.report({"WARNING"}, "BetterDepth: a job is already running; cancel it or wait.")
            return {"CANCELLED"}
        try:
            self._job, self._plan = self._start(context)
        except Exception as error:  # noqa: BLE001
            return _report_error(self, error)
        ActiveJob.job, ActiveJob.label = self._job, self._plan.label
        begin_modal_ui(self, context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            outcome = self._job.poll(partial(self._show_progress, context), partial(self._show_preview, context),
                                     block=False)
        except Exception as error:  # noqa: BLE001 - a UI update failed: never leave a job or a timer behind
            traceback.print_exc()
            self._job.cancel()
            self._end_ui(context)
            shutil.rmtree(self._plan.folder, ignore_errors=True)
            return _report_error(self, JobError("UI_ERROR", f"Showing the job's progress failed ({error}).",
                                                "The job was cancelled; the system console has the details."))
        if outcome is None:
            return {"PASS_THROUGH"}
        self._end_ui(context)
        return self._conclude(context, self._plan, self._job, *outcome)

    def _show_progress(self, context, progress) -> None:
        text = f"BetterDepth {self._plan.label}: {progress.message} ({progress.fraction:.0%}) - Esc to cancel"
        context.window_manager.progress_update(int(progress.fraction * 100))
        context.workspace.status_text_set(text)
        if context.area is not None:
            context.area.header_text_set(text)
        for window in context.window_manager.windows:
            for area in window.screen.areas:
                if area.type in ("VIEW_3D", "IMAGE_EDITOR"):
                    area.tag_redraw()

    def _show_preview(self, context, path: Path) -> None:
        """The engine's low-resolution preview in the Image Editors, replaced as the job goes on."""
        name = "BetterDepth Preview"
        old = bpy.data.images.get(name)
        if old is not None:
            bpy.data.images.remove(old)
        image = bpy.data.images.load(str(path), check_existing=False)
        image.name = name
        image.pack()  # the job folder goes away; the preview stays viewable
        for area in context.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image

    def _end_ui(self, context) -> None:
        end_modal_ui(self, context)
        if context.area is not None:
            context.area.header_text_set(None)

    def cancel(self, context):  # Blender calls this when the modal operator is aborted (e.g. file load)
        self._job.cancel()
        self._end_ui(context)

    # -- helpers for build() -------------------------------------------------------------------------------
    def parameters(self, plan: Plan, meta: dict) -> dict:
        provenance = record(task=self.task, source=plan.source, source_path=plan.source_path,
                            sent_sha256=plan.image_sha256, camera=plan.camera, request=plan.sections, meta=meta,
                            engine_job=plan.job_id, addon_version=ADDON_VERSION)
        provenance["known_distance"], provenance["kept_depth"] = plan.known_distance, plan.kept_depth
        return {"source": plan.source, "image": str(plan.image_path.name), "camera": plan.camera_name,
                "label": plan.label, "operator": self.operator_name(), "request": plan.sections,
                "engine_job": plan.job_id, "engine": meta, "provenance": provenance,
                "kept_depth": plan.kept_depth, "known_distance": plan.known_distance}

    @staticmethod
    def photo_image(plan: Plan, meta: dict, created: scene_build.Created) -> bpy.types.Image:
        """The input as an image for materials, turned like the engine turned it (EXIF orientation)."""
        if plan.rerun_of and plan.image_name:  # the re-run object's own material image: already turned
            return bpy.data.images[plan.image_name]
        image = bpy.data.images[plan.image_name] if plan.image_name else scene_build.load_image(plan.image_path,
                                                                                                created)
        if not plan.image_name and plan.folder in plan.image_path.parents:
            image.pack()  # a render or a converted copy: the job's temporary folder goes away
        orientation = meta.get("image", {}).get("exif_orientation", 1)
        if orientation != 1:
            image = scene_build.oriented_copy(image, orientation, created)
        return image


def _with_stored_estimate(meta_path: Path, stored_meta: dict, depth_from_job: str) -> None:
    """A job on a kept disparity knows nothing of the models that made it: its meta.json gets the re-run
    object's estimate (models, steps, seed), image and source job, and says the depth came from the .blend."""
    meta = json.loads(meta_path.read_text())
    kept = meta["estimate"].get("reused_disparity")
    meta["estimate"] = {**(stored_meta.get("estimate") or {}), "reused_disparity": kept}
    if meta.get("image", {}).get("path") is None and stored_meta.get("image"):
        meta["image"] = stored_meta["image"]
    meta["reused_from"] = depth_from_job
    meta_path.write_text(json.dumps(meta, indent=2))


def _normalized(disparity: np.ndarray) -> tuple[np.ndarray, float, float]:
    low, high = float(np.nanmin(disparity)), float(np.nanmax(disparity))
    return (disparity - low) / max(high - low, 1e-12), low, high


class BETTERDEPTH_OT_estimate_depth(EngineJobOperator, bpy.types.Operator):
    """Estimate depth for the image or camera render; shows the depth and the base prediction as images"""

    bl_idname = "betterdepth.estimate_depth"
    bl_label = "Estimate Depth"
    task = "estimate"

    def build(self, context, plan, files, created):
        meta = json.loads(files["meta.json"].read_text())
        images = []
        for name, title in (("disparity.npy", "depth"), ("base_disparity.npy", "base")):
            normalized, low, high = _normalized(np.load(files[name], allow_pickle=False))
            image = scene_build.float_image(f"{plan.label} {title}", normalized, created)
            image.pack()
            image["betterdepth"] = json.dumps({**self.parameters(plan, meta), "normalized_from": [low, high]})
            images.append(image)
        for area in context.screen.areas if context.screen else ():
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = images[0]
        height, width = images[0].size[1], images[0].size[0]
        return f"depth {width}x{height} in image '{images[0].name}' (disparity, 1 = nearest)"


class BETTERDEPTH_OT_create_mesh(EngineJobOperator, bpy.types.Operator):
    """A camera-aligned mesh cut at depth jumps, normal colours and the photo as material. From a camera
    render it uses that camera's exact intrinsics; for a photo it adds a matching camera"""

    bl_idname = "betterdepth.create_mesh"
    bl_label = "Create Mesh"
    task = "mesh"

    min_angle_deg: FloatProperty(name="Cut Angle", default=4.0, min=0.0, max=89.0,
                                 description="Cut the mesh where a surface would be seen at a shallower angle")
    max_faces: IntProperty(name="Max Faces", default=0, min=0, description="Decimate to this many faces (0: off)")
    fov_deg: FloatProperty(name="Field of View", default=0.0, min=0.0, max=179.0,
                           description="For photos, across the longer side (0: the photo's EXIF, else 55)")
    align_to_scene: BoolProperty(name="Align to Scene", default=True,
                                 description="Camera renders: scale the depth to the scene's own geometry (ray cast "
                                             "from the camera), so the mesh lands on it in scene units")
    compare_base: BoolProperty(name="Compare with Base", default=False,
                               description="Also build the base model's mesh (hidden, in the same place) and an "
                                           "image of base and refined depth side by side: what the refiner added")

    def sections(self, context, plan):
        mesh = {"colors": "normal", "min_angle_deg": self.min_angle_deg,
                "far_near_ratio": get_preferences(context).far_near_ratio}
        if self.max_faces:
            mesh["max_faces"] = self.max_faces
        if plan.camera_name:
            mesh["blender_camera"] = scene_build.camera_params(bpy.data.objects[plan.camera_name],
                                                               context.scene).to_request()
        elif self.fov_deg:
            mesh["fov_deg"] = self.fov_deg
        if self.compare_base:
            return {"mesh": mesh, "results": ("mesh.npz", "disparity.npy", "base_disparity.npy", "meta.json")}
        return {"mesh": mesh}

    def build(self, context, plan, files, created):
        meta = json.loads(files["meta.json"].read_text())
        camera = self._camera(context, plan, meta, created)
        obj, alignment = self._mesh_object(context, plan, meta, files["mesh.npz"], files["disparity.npy"],
                                           f"{plan.label} depth mesh", camera, created)
        summary = f"mesh '{obj.name}' with {len(obj.data.vertices)} vertices seen from camera '{camera.name}'"
        if alignment and "scale" in alignment:
            summary += f", aligned to the scene (median depth error {alignment['median_relative_error']:.1%})"
        if self.compare_base:
            base = self._compare_with_base(context, plan, files, camera, obj, created)
            summary += f"; base model's mesh '{base.name}' (hidden) and image '{plan.label} base | refined'"
        return summary

    @staticmethod
    def _camera(context, plan, meta, created) -> bpy.types.Object:
        if plan.camera_name:
            return bpy.data.objects[plan.camera_name]
        # A photo: a camera that sees exactly what the engine's pinhole camera saw.
        intrinsics = meta["mesh"]["camera"]
        camera = created.add(scene_build.new_camera(
            context, f"{plan.label} camera", params_from_intrinsics(intrinsics),
            int(intrinsics["width"]), int(intrinsics["height"])))
        created.add(camera.data)
        context.view_layer.update()  # world matrices follow rotation only after an update
        return camera

    def _mesh_object(self, context, plan, meta, mesh_path, disparity_path, name, camera, created):
        """The engine's mesh as an object at the camera, aligned to the scene for camera renders."""
        arrays = load_mesh_npz(mesh_path)
        alignment = None
        if plan.camera_name and self.align_to_scene and "scale" in (plan.stored_alignment or {}):
            arrays, alignment = scene_align.apply_stored_fit(arrays, np.load(disparity_path), meta["mesh"]["camera"],
                                                             plan.stored_alignment)
        elif plan.camera_name and self.align_to_scene:
            try:
                arrays, alignment = scene_align.align_mesh(context, camera, arrays, np.load(disparity_path),
                                                           meta["mesh"]["camera"])
            except AlignmentError as error:
                alignment = {"error": str(error)}
                self.report({"WARNING"}, f"BetterDepth: not aligned to the scene: {error} The mesh keeps the "
                                         "engine's depth range; add geometry in view or turn Align to Scene off.")
        if plan.known_distance:  # the same pixel at the same distance as before the re-run
            factor = apply_known_distance(arrays["vertices"], arrays["uvs"], meta["mesh"]["camera"],
                                          plan.known_distance)
            arrays = {**arrays, "vertices": arrays["vertices"] * np.float32(factor)}
            plan.known_distance = {**plan.known_distance, "scale": factor}
        mesh = created.add(scene_build.build_mesh(name, mesh_buffers(arrays)))
        if alignment and "scale" in alignment:
            scene_align.refresh_normal_colors(mesh, scene_build.NORMAL_COLORS)
        mesh.materials.append(created.add(
            scene_build.photo_material(f"{plan.label} photo", self.photo_image(plan, meta, created))))
        obj = created.add(scene_build.link_object(context, name, mesh))
        obj.matrix_world = camera.matrix_world.copy()
        scene_build.store_parameters(obj, {**self.parameters(plan, meta), "alignment": alignment})
        if alignment and "scale" in alignment:
            obj[scene_align.ERROR_PROPERTY] = alignment["median_relative_error"]
        return obj, alignment

    def _compare_with_base(self, context, plan, files, camera, refined, created) -> bpy.types.Object:
        """The base model's own mesh (same options, hidden, in the same place) and the two depths side by side:
        what the refiner added. The base disparity goes back to the engine as an external depth with the
        refiner off, so no model runs."""
        if not plan.image_path.is_file():
            raise JobError("NO_INPUT", "Compare needs the input image, which is no longer there.",
                           "Run Create Mesh with Compare on the image again.")
        request = JobRequest("mesh", plan.image_path, estimate={**plan.sections["estimate"], "refiner": "none"},
                             mesh=plan.sections["mesh"], base_prediction=files["base_disparity.npy"])
        job = EngineJob(partial(engine.connect, engine.settings(context)), request, plan.folder / "base")
        base_files = job.run()
        base_meta = json.loads(base_files["meta.json"].read_text())
        estimate = {**request.estimate, "base_prediction": {"space": "disparity",
                                                             "from_job": plan.job_id, "file": "base_disparity.npy"}}
        base_plan = dataclasses.replace(plan, job_id=job.job_id, sections={**plan.sections, "estimate": estimate},
                                        kept_depth=None, known_distance=None)
        base, _ = self._mesh_object(context, base_plan, base_meta, base_files["mesh.npz"],
                                    base_files["disparity.npy"], f"{plan.label} base mesh", camera, created)
        base["betterdepth_compare_of"] = refined.name
        base.hide_set(True)
        base.hide_render = True
        pair = [_normalized(np.load(files[name], allow_pickle=False))[0]
                for name in ("base_disparity.npy", "disparity.npy")]
        gap = np.full((pair[0].shape[0], max(2, pair[0].shape[1] // 50)), np.nan, np.float32)
        image = scene_build.float_image(f"{plan.label} base | refined", np.concatenate((pair[0], gap, pair[1]), 1),
                                        created)
        image.pack()
        for area in context.screen.areas if context.screen else ():
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
        return base


class BETTERDEPTH_OT_create_relief(EngineJobOperator, bpy.types.Operator):
    """A closed, printable bas-relief solid of the image, lying on the XY plane"""

    bl_idname = "betterdepth.create_relief"
    bl_label = "Create Relief"
    task = "relief"

    width: FloatProperty(name="Width", default=2.0, min=1e-4, description="Across the image, in scene units")
    depth: FloatProperty(name="Depth", default=0.2, min=1e-5, description="Height of the nearest point")
    base: FloatProperty(name="Base", default=0.05, min=1e-5, description="Thickness of the back plate")
    method: EnumProperty(name="Compression", default="gradient", items=(
        ("gradient", "Gradient", "Flatten large depth steps, keep detail"),
        ("linear", "Linear", "Depth as it is"), ("gamma", "Gamma", "Lift far parts")))

    def sections(self, context, plan):
        relief = {"width": self.width, "depth": self.depth, "base": self.base, "method": self.method,
                  "solid": True, "heightmap": False}
        return {"relief": relief, "mesh": {"far_near_ratio": get_preferences(context).far_near_ratio},
                "results": ("mesh.npz", "meta.json")}

    def build(self, context, plan, files, created):
        meta = json.loads(files["meta.json"].read_text())
        buffers = mesh_buffers(load_mesh_npz(files["mesh.npz"]))
        mesh = created.add(scene_build.build_mesh(f"{plan.label} relief", buffers))
        obj = created.add(scene_build.link_object(context, f"{plan.label} relief", mesh))
        obj.location = context.scene.cursor.location
        scene_build.store_parameters(obj, self.parameters(plan, meta))
        return f"relief '{obj.name}' ({self.width:g} x {self.depth + self.base:g} units thick at most)"


class BETTERDEPTH_OT_displacement(EngineJobOperator, bpy.types.Operator):
    """A subdivided plane with a Displace modifier driven by the float height map"""

    bl_idname = "betterdepth.displacement"
    bl_label = "Displacement"
    task = "relief"

    width: FloatProperty(name="Width", default=2.0, min=1e-4, description="Across the image, in scene units")
    depth: FloatProperty(name="Depth", default=0.2, min=1e-5, description="Height of the nearest point")
    subdivisions: IntProperty(name="Subdivisions", default=256, min=2, max=4096,
                              description="Plane vertices along the image's longer side")
    method: EnumProperty(name="Method", default="MODIFIER", items=(
        ("MODIFIER", "Displace Modifier", "Geometry moved by a Displace modifier: any render engine, the viewport"),
        ("MATERIAL", "Material (Cycles)", "True displacement in the material, adaptively subdivided by Cycles")))

    def sections(self, context, plan):
        relief = {"width": self.width, "depth": self.depth, "solid": False, "heightmap": True}
        return {"relief": relief, "mesh": {"far_near_ratio": get_preferences(context).far_near_ratio},
                "results": ("height.exr", "meta.json")}

    def build(self, context, plan, files, created):
        meta = json.loads(files["meta.json"].read_text())
        settings = meta["height_map"]["blender_displace"]
        height_image = scene_build.load_image(files["height.exr"], created, non_color=True)
        height_image.pack()  # the job folder goes away
        width_px, height_px = height_image.size
        columns, rows = ((self.subdivisions, max(2, round(self.subdivisions * height_px / width_px)))
                         if width_px >= height_px else
                         (max(2, round(self.subdivisions * width_px / height_px)), self.subdivisions))
        plane = grid_plane(columns, rows, self.width, self.width * height_px / width_px)
        mesh = created.add(scene_build.build_mesh(f"{plan.label} displaced plane", mesh_buffers(plane)))
        obj = created.add(scene_build.link_object(context, f"{plan.label} displaced plane", mesh))
        obj.location = context.scene.cursor.location
        # The engine's strength is for a plane relief-width wide; it scales with the plane.
        strength = settings["strength"] * self.width / settings["plane_width"]
        photo = self.photo_image(plan, meta, created)
        if self.method == "MODIFIER":
            mesh.materials.append(created.add(scene_build.photo_material(f"{plan.label} photo", photo)))
            scene_build.displace_modifier(obj, height_image, strength, settings["midlevel"], created)
        else:
            mesh.materials.append(created.add(scene_build.displacement_material(
                f"{plan.label} displacement", height_image, photo, strength, settings["midlevel"])))
            scene_build.adaptive_subdivision(obj)
        scene_build.store_parameters(obj, self.parameters(plan, meta))
        return f"plane '{obj.name}' {columns}x{rows} displaced by '{height_image.name}' ({self.method.lower()})"


class BETTERDEPTH_OT_cancel(bpy.types.Operator):
    """Cancel the running BetterDepth job on the engine"""

    bl_idname = "betterdepth.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return ActiveJob.running()

    def execute(self, context):
        ActiveJob.job.cancel()
        return {"FINISHED"}


# -- the engine box ---------------------------------------------------------------------------------------
class EngineStatus:
    """The last health answer, for the panel (drawing must never do HTTP)."""

    health: dict | None = None
    error: str = ""
    checked_at: float = 0.0

    @classmethod
    def refresh(cls, settings) -> None:
        """Ask the engine (starting a managed one if needed); safe on a worker thread (no Blender data)."""
        try:
            cls.health, cls.error = engine.connect(settings).health(), ""
        except Exception as error:  # noqa: BLE001
            cls.health, cls.error = None, JobError.from_exception(error).report()
        cls.checked_at = time.time()


class BETTERDEPTH_OT_engine_status(bpy.types.Operator):
    """Ask the engine for its versions, device, memory and loaded models"""

    bl_idname = "betterdepth.engine_status"
    bl_label = "Refresh Status"

    def execute(self, context):
        settings = engine.settings(context)
        if settings.mode == "MANAGED" and not engine.managed_running():
            EngineStatus.health, EngineStatus.error = None, "Not running (starts on first use)."
            return {"FINISHED"}
        EngineStatus.refresh(settings)
        return {"FINISHED"}


class BETTERDEPTH_OT_engine_start(bpy.types.Operator):
    """Start the managed engine now (it also starts on first use)"""

    bl_idname = "betterdepth.engine_start"
    bl_label = "Start"

    def execute(self, context):
        settings = engine.settings(context)
        if not bpy.app.background:  # starting takes seconds: the UI goes on; the panel shows the outcome
            EngineStatus.health, EngineStatus.error = None, "Starting..."
            threading.Thread(target=EngineStatus.refresh, args=(settings,), name="betterdepth-start",
                             daemon=True).start()
            self.report({"INFO"}, "BetterDepth engine starting; Refresh Status shows when it is up.")
            return {"FINISHED"}
        try:
            health = engine.connect(settings).health()
        except Exception as error:  # noqa: BLE001
            return _report_error(self, error)
        EngineStatus.health, EngineStatus.error = health, ""
        self.report({"INFO"}, f"BetterDepth engine {health.get('engine_version')} on {health.get('device')}")
        return {"FINISHED"}


class BETTERDEPTH_OT_engine_stop(bpy.types.Operator):
    """Stop the managed engine (frees all its memory)"""

    bl_idname = "betterdepth.engine_stop"
    bl_label = "Stop"

    def execute(self, context):
        stopped = engine.stop_managed()
        EngineStatus.health, EngineStatus.error = None, "Stopped."
        self.report({"INFO"}, "BetterDepth engine stopped." if stopped else "BetterDepth engine was not running.")
        return {"FINISHED"}


class BETTERDEPTH_OT_engine_restart(bpy.types.Operator):
    """Stop and start the managed engine"""

    bl_idname = "betterdepth.engine_restart"
    bl_label = "Restart"

    def execute(self, context):
        engine.stop_managed()
        return bpy.ops.betterdepth.engine_start()


class BETTERDEPTH_OT_release_memory(bpy.types.Operator):
    """Unload the engine's models: frees GPU and CPU memory until the next job"""

    bl_idname = "betterdepth.release_memory"
    bl_label = "Release GPU Memory"

    def execute(self, context):
        settings = engine.settings(context)
        if settings.mode == "MANAGED" and not engine.managed_running():
            self.report({"INFO"}, "BetterDepth engine is not running: nothing to release.")
            return {"FINISHED"}
        try:
            answer = engine.connect(settings).unload()
        except Exception as error:  # noqa: BLE001
            return _report_error(self, error)
        names = ", ".join(model["name"] for model in answer.get("unloaded", [])) or "nothing was loaded"
        self.report({"INFO"}, f"BetterDepth released: {names}.")
        return {"FINISHED"}


class BETTERDEPTH_OT_check_setup(bpy.types.Operator):
    """Check what the engine needs and say exactly what is missing and how to fix it"""

    bl_idname = "betterdepth.check_setup"
    bl_label = "Check Setup"

    def execute(self, context):
        prefs = get_preferences(context)
        findings = check_setup(prefs.engine_mode, bpy.path.abspath(prefs.engine_python),
                               bpy.path.abspath(prefs.project_dir), prefs.url, prefs.token,
                               engine.online_access())
        settings = engine.settings(context)
        reachable = settings.mode == "EXTERNAL" or engine.managed_running()  # never start one just to check
        if all(finding.ok for finding in findings) and reachable:
            try:
                health = engine.connect(settings).health()
                findings.append(Finding(True, f"Engine {health['engine_version']} answers on {health['device']}."))
            except Exception as error:  # noqa: BLE001
                job_error = JobError.from_exception(error)
                findings.append(Finding(False, job_error.message, job_error.hint))
        for finding in findings:
            self.report({"INFO"} if finding.ok else {"ERROR"},
                        f"BetterDepth: {finding.what}" + ("" if finding.ok else f" Fix: {finding.fix}"))
        return {"FINISHED"} if all(finding.ok for finding in findings) else {"CANCELLED"}


CLASSES = (
    BETTERDEPTH_OT_estimate_depth, BETTERDEPTH_OT_create_mesh, BETTERDEPTH_OT_create_relief,
    BETTERDEPTH_OT_displacement, BETTERDEPTH_OT_cancel, BETTERDEPTH_OT_engine_status, BETTERDEPTH_OT_engine_start,
    BETTERDEPTH_OT_engine_stop, BETTERDEPTH_OT_engine_restart, BETTERDEPTH_OT_release_memory,
    BETTERDEPTH_OT_check_setup,
)

"""gooseBit plugin: assign IETF SUIT envelopes to devices running suit-agent.

gooseBit itself stores only SWUpdate (.swu) and RAUC (.raucb) images. This plugin keeps one
SUIT envelope per device and offers it through gooseBit's DDI API as a deployment whose
single artifact is ``update.suit``, which ``suit-agent daemon`` (``[ddi]``) installs through
its TA. Enable it with ``GOOSEBIT_PLUGINS='["goosebit_suit"]'`` (or ``plugins:`` in
goosebit.yaml).

Operator API (a gooseBit user with ``device.write``; ``device.read`` to read):

* ``PUT /plugins/goosebit_suit/devices/{id}?version=N`` with the envelope as the body assigns
  it; ``N`` is the envelope's sequence number (``suit-tool inspect --json``), the version the
  device reports as ``sw_version`` once it runs it.
* ``GET /plugins/goosebit_suit/devices/{id}`` shows the assignment.
* ``DELETE /plugins/goosebit_suit/devices/{id}`` withdraws it.

The device downloads ``GET /plugins/goosebit_suit/devices/{id}/update.suit``, checked with
gooseBit's device authentication like the DDI API. The envelope is offered while the device
reports another ``sw_version`` and is not in the error state (where a refused update leaves
it, with the device's feedback, the TA's reason and signed SUIT report, in its log).

Limits: no software row stands behind a plugin deployment (gooseBit names its action -1), so
gooseBit's rollouts and statistics do not count it; the device's version comes from its
configData.
"""

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Security
from fastapi.responses import FileResponse

from goosebit.auth import validate_user_permissions
from goosebit.auth.permissions import GOOSEBIT_PERMISSIONS
from goosebit.db.models import Device, UpdateStateEnum
from goosebit.device_manager import HandlingType
from goosebit.schema.plugins import PluginSchema
from goosebit.schema.updates import UpdateChunk, UpdateChunkArtifact
from goosebit.settings import config as goosebit_config
from goosebit.updater.routes import validate_device_token

ENVELOPE = "update.suit"
MAX_ENVELOPE = 16 * 1024 * 1024
_ID = re.compile(r"^[A-Za-z0-9._~-]{1,256}$")
_VERSION = re.compile(r"^[0-9]{1,20}$")


def _store() -> Path:
    return Path(os.environ.get("GOOSEBIT_SUIT_DIR", str(goosebit_config.artifacts_dir / "suit")))


def _device_dir(dev_id: str) -> Path:
    if not _ID.match(dev_id) or dev_id in (".", ".."):
        raise HTTPException(400, "invalid device id")
    return _store() / dev_id


def _assignment(dev_id: str) -> dict[str, Any] | None:
    try:
        return json.loads((_device_dir(dev_id) / "assignment.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def _looks_like_envelope(data: bytes) -> bool:
    """A SUIT_Envelope is a CBOR map, tagged 107 (0xd8 0x6b) or not (major type 5)."""
    if data[:2] == b"\xd8\x6b":
        data = data[2:]
    return len(data) > 0 and data[0] >> 5 == 5


router = APIRouter()


@router.put(
    "/devices/{dev_id}",
    dependencies=[Security(validate_user_permissions, scopes=[GOOSEBIT_PERMISSIONS["device"]["write"]()])],
)
async def assign(request: Request, dev_id: str, version: str) -> dict[str, Any]:
    if not _VERSION.match(version):
        raise HTTPException(400, "version must be the envelope's sequence number")
    data = await request.body()
    if len(data) > MAX_ENVELOPE or not _looks_like_envelope(data):
        raise HTTPException(400, "the body is not a SUIT envelope")
    directory = _device_dir(dev_id)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "version": version,
        "size": len(data),
        "hashes": {
            "sha1": hashlib.sha1(data).hexdigest(),
            "md5": hashlib.md5(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    }
    for name, content in ((ENVELOPE, data), ("assignment.json", json.dumps(meta).encode())):
        partial = directory / (name + ".partial")
        partial.write_bytes(content)
        partial.replace(directory / name)
    # A new assignment is a new chance for a device a refused one left in the error state.
    device = await Device.get_or_none(id=dev_id)
    if device is not None and device.last_state == UpdateStateEnum.ERROR:
        from goosebit.device_manager import DeviceManager

        await DeviceManager.update_force_update(device, True)
    return {"device": dev_id, **meta}


@router.get(
    "/devices/{dev_id}",
    dependencies=[Security(validate_user_permissions, scopes=[GOOSEBIT_PERMISSIONS["device"]["read"]()])],
)
async def show(dev_id: str) -> dict[str, Any]:
    meta = _assignment(dev_id)
    if meta is None:
        raise HTTPException(404, "no SUIT envelope assigned")
    return {"device": dev_id, **meta}


@router.delete(
    "/devices/{dev_id}",
    dependencies=[Security(validate_user_permissions, scopes=[GOOSEBIT_PERMISSIONS["device"]["delete"]()])],
)
async def withdraw(dev_id: str) -> dict[str, str]:
    directory = _device_dir(dev_id)
    for name in ("assignment.json", ENVELOPE):
        (directory / name).unlink(missing_ok=True)
    return {"device": dev_id}


@router.get("/devices/{dev_id}/update.suit", dependencies=[Depends(validate_device_token)])
async def envelope(dev_id: str) -> FileResponse:
    if _assignment(dev_id) is None:
        raise HTTPException(404, "no SUIT envelope assigned")
    return FileResponse(_device_dir(dev_id) / ENVELOPE, media_type="application/octet-stream", filename=ENVELOPE)


async def update_source(request: Request, device: Device) -> tuple[HandlingType, UpdateChunk | None]:
    """gooseBit's update source hook: the device's SUIT envelope, while it runs another version."""
    meta = _assignment(device.id)
    if meta is None or device.sw_version == meta["version"]:
        return HandlingType.SKIP, None
    if device.last_state == UpdateStateEnum.ERROR and not device.force_update:
        return HandlingType.SKIP, None
    link = str(request.url_for("envelope", dev_id=device.id))
    artifact = UpdateChunkArtifact(
        filename=ENVELOPE,
        hashes=meta["hashes"],
        size=meta["size"],
        links={"download": {"href": link}, "download-http": {"href": link}},
    )
    chunk = UpdateChunk(part="os", version=meta["version"], name=f"suit-{meta['version']}", artifacts=[artifact])
    return HandlingType.FORCED, chunk


config = PluginSchema(router=router, update_source_hook=update_source)

"""Write docs/openapi.json: the engine service's schema (protocol v1), as `GET /v1/openapi.json` serves it.

    python scripts/export_openapi.py            # tests/server/test_protocol.py checks that the two agree
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from betterdepth_engine.server.app import create_app
from betterdepth_engine.server.settings import ServerSettings

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def main() -> None:
    with tempfile.TemporaryDirectory() as state_dir:
        app = create_app(ServerSettings(state_dir=Path(state_dir), token="unused-for-the-schema"))
        try:
            schema = app.openapi()
        finally:
            app.state.service.runner.stop()
            app.state.service.store.close()
    OUTPUT.write_text(json.dumps(schema, indent=2) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()

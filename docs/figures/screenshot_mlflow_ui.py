"""Screenshots of the MLflow UI for a dbn-experiment sweep (README "show it" figures).

Drives a headless chromium through the Chrome DevTools protocol, because the MLflow 3 UI is a React app whose
runs table only shows a sweep's children after a click on the parent's expand toggle. Needs a running
`mlflow ui` (see docs/figures/README_showcase.md), chromium, and the `websocket-client` package:

    python -m venv /tmp/cdpvenv && /tmp/cdpvenv/bin/pip install websocket-client
    /tmp/cdpvenv/bin/python docs/figures/screenshot_mlflow_ui.py --ui http://127.0.0.1:5000 \
        --experiment five-seeds --out docs/figures

Writes <out>/mlflow_ui_runs.png (runs table, sweep parent expanded to its children, a few metric columns) and
<out>/mlflow_ui_compare.png (chart view: the per-epoch training metrics of the five children, one line per seed).
Only the standard library and websocket-client are used; no MLflow import.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import websocket

# Columns added to the runs table (first match in the column picker; params win over tags of the same name).
COLUMNS_ON = [
    "seed",
    "readout/h3/accuracy",
    "graph/all/assortativity",
    "weights/w1/mean_shift",
    "clusters/h1/pearson_k_s",
]
COLUMNS_OFF = ["Dataset", "Source", "Models"]
RUN_NAME_WIDTH = 360  # px; the full child names ("seed=0,train.epochs=3,...") would take ~530


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """A headless chromium with one page, driven over the DevTools websocket."""

    def __init__(self, chromium: str = "chromium", width: int = 1600, height: int = 1000):
        self.width = width
        self.port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="cdp-profile-")
        self.proc = subprocess.Popen(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                f"--window-size={width},{height}",
                f"--remote-debugging-port={self.port}",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list") as r:
                    page = next(t for t in json.load(r) if t["type"] == "page")
                break
            except Exception:
                if time.time() > deadline:
                    self.close()
                    raise
                time.sleep(0.3)
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.msg_id = 0
        self.call("Page.enable")
        self.viewport(width, height)

    def viewport(self, width: int, height: int) -> None:
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", **metrics)

    def call(self, method: str, **params):
        self.msg_id += 1
        my_id = self.msg_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression[:80]}: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def wait_for(self, condition: str, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.js(condition):
                    return
            except RuntimeError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"page never satisfied: {condition}")

    def type_into(self, selector: str, text: str) -> None:
        """Replace the value of a React-controlled input, as a user typing would."""
        self.js(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, '');
            el.dispatchEvent(new Event('input', {{bubbles: true}}));
            el.focus();
        }})()""")
        self.call("Input.insertText", text=text)

    def key(self, key: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=code)

    def park_mouse(self) -> None:
        """Move the pointer off the charts so that no hover tool-tip or plotly mode bar is drawn."""
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=5, y=995)

    def screenshot(self, path: Path, height: int | None = None) -> None:
        """PNG of the viewport, or of its top `height` pixels."""
        clip = {}
        if height:
            width = self.js("window.innerWidth")
            clip = {"clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}}
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png", **clip)["data"]))

    def close(self) -> None:
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            self.proc.terminate()
            self.proc.wait(10)
            shutil.rmtree(self.profile, ignore_errors=True)


def experiment_id(ui: str, name: str) -> str:
    url = f"{ui}/ajax-api/2.0/mlflow/experiments/get-by-name?" + urllib.parse.urlencode({"experiment_name": name})
    with urllib.request.urlopen(url) as r:
        return json.load(r)["experiment"]["experiment_id"]


def open_runs_page(b: Browser, ui: str, exp_id: str, n_runs: int) -> None:
    """Experiment page in the model-training workflow, assistant panel closed, sweep parent(s) expanded."""
    b.call("Page.navigate", url=f"{ui}/#/experiments/{exp_id}/runs?workflowType=machine_learning")
    b.wait_for("document.body.innerText.includes('matching runs')")
    time.sleep(1)
    b.js("document.querySelector('button[aria-label=Close]')?.click()")  # the "MLflow Assistant" side panel
    b.wait_for("document.querySelector('button[data-component-id*=runnamecellrenderer]') !== null")
    time.sleep(1)
    # the expanded state is remembered (local storage): click the toggles only while some run has no row
    rows = "document.querySelectorAll('.ag-center-cols-container [role=row]').length"
    if b.js(rows) < n_runs:
        b.js("document.querySelectorAll('button[data-component-id*=runnamecellrenderer]').forEach(e => e.click())")
    b.wait_for(f"{rows} >= {n_runs}", 30)
    time.sleep(1)


def set_column(b: Browser, name: str, on: bool) -> str:
    b.type_into('input[placeholder="Search columns"]', name)
    time.sleep(0.8)
    return b.js(f"""(() => {{
        let group = '', hit = null;
        for (const n of document.querySelectorAll('.du-bois-light-tree-treenode')) {{
            // filtered nodes highlight the match, so their title attribute is empty: read the text
            const t = (n.querySelector('.du-bois-light-tree-node-content-wrapper')?.innerText ?? '').trim();
            if (/^(Attributes|Metrics|Parameters|Tags)/.test(t)) {{ group = t; continue; }}
            if (t === {json.dumps(name)} && (!hit || group.startsWith('Parameters'))) hit = n;
        }}
        if (!hit) return 'not found';
        const checked = hit.classList.contains('du-bois-light-tree-treenode-checkbox-checked');
        if (checked !== {json.dumps(on)}) hit.querySelector('.du-bois-light-tree-checkbox').click();
        return checked === {json.dumps(on)} ? 'already' : 'toggled';
    }})()""")


def runs_table(b: Browser, ui: str, exp_id: str, n_runs: int, out: Path) -> None:
    open_runs_page(b, ui, exp_id, n_runs)
    b.js(
        "[...document.querySelectorAll('button[data-testid=column-selection-dropdown]')]"
        ".find(e => e.innerText.includes('Columns')).click()"
    )
    b.wait_for("document.querySelector('input[placeholder=\"Search columns\"]') !== null")
    for name in COLUMNS_OFF:
        print(f"  column -{name}: {set_column(b, name, False)}")
    for name in COLUMNS_ON:
        print(f"  column +{name}: {set_column(b, name, True)}")
    b.key("Escape", 27)
    time.sleep(1)
    b.js("document.querySelector('button[aria-label=\"Toggle sidebar\"]')?.click()")  # room for the columns
    time.sleep(1)
    # fit the other columns to their content, as a double click on a header's resize handle does
    b.js("""document.querySelectorAll('.ag-header-cell:not([col-id*="Run Name"]) .ag-header-cell-resize').forEach(
        e => e.dispatchEvent(new MouseEvent('dblclick', {bubbles: true})))""")
    time.sleep(0.5)
    # and drag the run-name column's resize handle to RUN_NAME_WIDTH (synthetic pointer + mouse events)
    b.js(f"""(() => {{
        const cell = document.querySelector('.ag-header-cell[col-id*="Run Name"]');
        const h = cell.querySelector('.ag-header-cell-resize');
        const r = h.getBoundingClientRect(), y = r.y + r.height / 2, x0 = r.x + r.width / 2;
        const dx = {RUN_NAME_WIDTH} - cell.getBoundingClientRect().width;
        const fire = (kind, target, x) => {{
            const o = {{bubbles: true, cancelable: true, clientX: x, clientY: y, button: 0, buttons: 1,
                        pointerId: 1, isPrimary: true, pointerType: 'mouse'}};
            target.dispatchEvent(new PointerEvent('pointer' + kind, o));
            target.dispatchEvent(new MouseEvent('mouse' + kind, o));
        }};
        fire('down', h, x0);
        for (let i = 1; i <= 20; i++) fire('move', document, x0 + dx * i / 20);
        fire('up', document, x0 + dx);
    }})()""")
    time.sleep(1)
    b.js("document.activeElement?.blur()")
    b.park_mouse()
    time.sleep(0.5)
    # crop the empty space under the table
    bottom = b.js("document.querySelector('.ag-center-cols-container').getBoundingClientRect().bottom")
    b.screenshot(out, height=int(bottom) + 40)


def chart_view(
    b: Browser,
    ui: str,
    exp_id: str,
    n_runs: int,
    metric_filter: str,
    out: Path,
    n_plots: int = 5,
    height: int = 1400,
) -> None:
    """Chart view, charts filtered by `metric_filter`; the shot ends under the `n_plots`-th chart."""
    open_runs_page(b, ui, exp_id, n_runs)
    b.js("document.querySelector('input[value=CHART]').click()")
    b.wait_for("document.querySelector('input[placeholder=\"Search metric charts\"]') !== null")
    b.type_into('input[placeholder="Search metric charts"]', metric_filter)
    # plotly draws one <path class="js-line"> per run and chart once the histories have loaded
    b.wait_for("document.querySelectorAll('.js-line').length > 0", 60)
    b.viewport(b.width, height)  # taller page: two rows of charts
    time.sleep(3)
    b.js("document.activeElement?.blur()")
    # the plotly zoom/pan tool bars drawn over every chart hide the top of the curves
    b.js(
        "document.head.insertAdjacentHTML('beforeend',"
        " '<style>.modebar-container{display:none !important}</style>')"
    )
    b.park_mouse()
    time.sleep(1)
    bottom = b.js(f"""(() => {{
        const plots = [...document.querySelectorAll('.js-plotly-plot')];
        const last = plots[Math.min({n_plots}, plots.length) - 1];
        // the chart card: the plot's nearest ancestor that also holds the chart title and legend
        const h = last.getBoundingClientRect().height;
        let card = last;
        while (card.parentElement && card.getBoundingClientRect().height < h + 60) card = card.parentElement;
        return card.getBoundingClientRect().bottom;
    }})()""")
    b.screenshot(out, height=min(int(bottom) + 16, height))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ui", required=True, help="base URL of a running `mlflow ui`, e.g. http://127.0.0.1:5000")
    p.add_argument("--experiment", default="five-seeds")
    p.add_argument("--runs", type=int, default=6, help="runs in the experiment (parent + children) to wait for")
    p.add_argument("--chart-filter", default="train/", help="text typed into 'Search metric charts'")
    p.add_argument("--out", type=Path, default=Path("docs/figures"))
    p.add_argument("--chromium", default="chromium")
    args = p.parse_args()
    ui = args.ui.rstrip("/")
    exp_id = experiment_id(ui, args.experiment)
    args.out.mkdir(parents=True, exist_ok=True)
    b = Browser(args.chromium)
    try:
        runs_table(b, ui, exp_id, args.runs, args.out / "mlflow_ui_runs.png")
        chart_view(b, ui, exp_id, args.runs, args.chart_filter, args.out / "mlflow_ui_compare.png")
    finally:
        b.close()
    print(f"wrote {args.out / 'mlflow_ui_runs.png'} and {args.out / 'mlflow_ui_compare.png'}")


if __name__ == "__main__":
    main()

"""labelstream: run the local stack and the main job (apply a project, submit items, wait, export)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import grpc
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, track
from rich.table import Table

from labelstream.cli import client, datasheet, exports, payoff
from labelstream.cli.exports import ExportFormat
from labelstream.cli.projects import InputFileError, load_items, load_project
from labelstream.cli.stack import REPO_ROOT, SERVICES, LocalStack, StackError, StackState
from labelstream.common.projects import is_multi_label, is_preference, parse_label_set
from labelstream.common.settings import settings_table
from labelstream.common.topics import Topics
from labelstream.crowd.multilabel import model_set
from labelstream.simulation.workforce import BEHAVIOURS, WorkerProfile, Workforce, gold_by_text, sign_up
from labelstream.v1 import events_pb2

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
project_app = typer.Typer(help="Projects: what to label and how.", no_args_is_help=True)
app.add_typer(project_app, name="project")
console = Console(stderr=True)
RUNS = REPO_ROOT / "runs"
DEMO_DIR = REPO_ROOT / "deploy" / "examples" / "sst2"
GUARANTEE_DEMO_DIR = REPO_ROOT / "deploy" / "examples" / "agnews"

RunDir = Annotated[Path | None, typer.Option(help="Run folder of the stack (default: runs/current)")]


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def _state(run_dir: Path | None) -> StackState:
    try:
        return StackState.load(run_dir or RUNS / "current")
    except StackError as exc:
        raise _fail(str(exc)) from exc


def _new_run_dir() -> Path:
    run_dir = RUNS / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    current = RUNS / "current"
    if current.is_symlink() or current.exists():
        current.unlink()
    current.symlink_to(run_dir.name)
    return run_dir


def _print_endpoints(state: StackState) -> None:
    table = Table(title=f"labelstream local stack ({state.run_dir})")
    for column in ("part", "address", "metrics", "log"):
        table.add_column(column)
    logs = Path(state.run_dir) / "logs"
    ports = state.ports
    table.add_row("Kafka broker (Tansu)", state.kafka_bootstrap, "", str(logs / "broker.log"))
    table.add_row("MongoDB (NX-27017)", state.mongodb_uri, "", str(logs / "store.log"))
    table.add_row("Triton", f"127.0.0.1:{ports.triton_grpc} (gRPC), :{ports.triton_http} (HTTP)",
                  f":{ports.triton_metrics}/metrics", str(logs / "triton.log"))
    for service in SERVICES:
        table.add_row(service, state.grpc_address(service), f":{ports.metrics[service]}/metrics",
                      str(logs / f"{service}.log"))
    table.add_row("annotator page", state.web_url("dispatcher"), "", "")
    table.add_row("dashboard", state.web_url("monitor"), "", "")
    Console(width=160).print(table)
    # The dashboard asks for a token; this link opens it signed in as this run's admin (see
    # StackState.dashboard_link for why a #token= fragment, and what it costs).
    console.print(f"dashboard, signed in as admin: {state.dashboard_link()}", soft_wrap=True)
    console.print("annotators sign in with a token from [bold]labelstream create-worker[/bold]; project owners "
                  "read their dashboard with one from [bold]labelstream create-owner[/bold]")


@app.command()
def up(base_port: Annotated[int, typer.Option(help="First of 30 consecutive ports the stack uses")] = 19000,
       tls: Annotated[bool, typer.Option(help="gRPC over TLS, with a CA and certificates made at start")] = False,
       mutual_tls: Annotated[bool, typer.Option(help="TLS with client certificates too (implies --tls)")] = False,
       ) -> None:
    """Start broker, store, Triton and the six services; return when all are ready. It makes an
    admin and a service token (kept in the run folder's stack.json, which later commands read)."""
    stack = LocalStack(_new_run_dir(), base_port, progress=console.log, tls=tls, mutual_tls=mutual_tls)
    try:
        state = stack.start()
    except StackError as exc:
        raise _fail(str(exc)) from exc
    _print_endpoints(state)
    console.print("stop it with: [bold]labelstream down[/bold]")


@app.command()
def down(run_dir: RunDir = None) -> None:
    """Stop the local stack cleanly (services finish their batch and commit first)."""
    stack = LocalStack.attach(Path(_state(run_dir).run_dir))
    stack.progress = console.log
    stack.stop()
    console.print("stopped")


@app.command()
def status(run_dir: RunDir = None) -> None:
    """Where everything listens and whether each service is SERVING."""
    from labelstream.cli.stack import grpc_serving

    state = _state(run_dir)
    _print_endpoints(state)
    for service in SERVICES:
        ok = grpc_serving(state.grpc_target(service, token=""))
        console.print(f"{service:<11} {'[green]SERVING' if ok else '[red]NOT SERVING'}")


@app.command()
def settings() -> None:
    """Print the table of environment variables every service reads."""
    typer.echo(settings_table())


@project_app.command("apply")
def project_apply(file: Path, run_dir: RunDir = None) -> None:
    """Create or update a project from a YAML file."""
    state = _state(run_dir)
    try:
        spec = load_project(file)
        created = client.apply_project(state.grpc_target("ingest"), spec)
    except InputFileError as exc:
        raise _fail(str(exc)) from exc
    except grpc.RpcError as exc:
        raise _fail(exc.details()) from exc
    console.print(f"project {spec.project_id} {'created' if created else 'updated'}")


def _submit_with_progress(state: StackState, project_id: str, items: list[dict]) -> None:
    with Progress(TextColumn("submitting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("submit", total=len(items))
        client.publish_json_items(state.kafka_bootstrap, project_id, items,
                                  on_sent=lambda n: progress.advance(task, n))


def _wait_with_progress(state: StackState, project_id: str, expected: int, timeout_s: float):
    with Progress(TextColumn("final labels"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("auto {task.fields[auto]} · human {task.fields[human]}"), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("wait", total=expected, auto=0, human=0)

        def show(stats) -> None:
            progress.update(task, completed=stats.final_labels, auto=stats.auto_path.final_labels,
                            human=stats.human_path.final_labels)

        return client.wait_for_final_labels(state.grpc_target("monitor"), project_id, expected, timeout_s, show)


@app.command()
def submit(file: Path, project: Annotated[str, typer.Option(help="Project id")],
           run_dir: RunDir = None) -> None:
    """Publish items (JSONL or CSV) to items.raw."""
    state = _state(run_dir)
    try:
        items = load_items(file)
    except InputFileError as exc:
        raise _fail(str(exc)) from exc
    _submit_with_progress(state, project, items)
    console.print(f"submitted {len(items)} items; follow them with: labelstream wait --project {project} "
                  f"--count {len(items)}")


@app.command()
def wait(project: Annotated[str, typer.Option()], count: Annotated[int, typer.Option()],
         timeout: Annotated[float, typer.Option(help="Seconds")] = 900, run_dir: RunDir = None) -> None:
    """Show progress until `count` items of the project have a final label."""
    try:
        _wait_with_progress(_state(run_dir), project, count, timeout)
    except TimeoutError as exc:
        raise _fail(str(exc)) from exc


@app.command()
def report(project: Annotated[str, typer.Option()], run_dir: RunDir = None) -> None:
    """Print the project's figures as JSON."""
    typer.echo(json.dumps(client.report_dict(client.project_stats(_state(run_dir).grpc_target("monitor"),
                                                                   project)), indent=2))


@app.command("dead-letters")
def dead_letters(project: Annotated[str, typer.Option(help="Only this project's letters")] = "",
                 reason: Annotated[str, typer.Option(help="Only this reason, e.g. bad_json or handler_error")] = "",
                 topic: Annotated[str, typer.Option(help="Only records from this source topic")] = "",
                 last: Annotated[int, typer.Option(help="How many of the newest letters to show")] = 10,
                 replay: Annotated[bool, typer.Option(help="Send the selected records back to their source "
                                                           "topics (after fixing their producer or handler)")] = False,
                 run_dir: RunDir = None) -> None:
    """What went to items.dlq: counts by service, source topic and reason, and the newest letters."""
    state = _state(run_dir)
    letters = client.read_dead_letters(state.kafka_bootstrap, project, reason, topic)
    counts: dict[tuple[str, str, str], int] = {}
    for letter in letters:
        key = (letter.service, letter.source_topic, letter.reason + (f" ({letter.error_type})" if letter.error_type
                                                                      else ""))
        counts[key] = counts.get(key, 0) + 1
    table = Table(title=f"{len(letters)} dead letters")
    for column in ("service", "source topic", "reason", "records"):
        table.add_column(column)
    for (service, source, why), count in sorted(counts.items()):
        table.add_row(service, source, why, str(count))
    console.print(table)
    newest = Table(title=f"the newest {min(last, len(letters))}")
    for column in ("at", "service", "source", "reason", "item", "detail"):
        newest.add_column(column, overflow="fold")
    for letter in letters[-last:] if last > 0 else []:
        newest.add_row(datetime.fromtimestamp(letter.at_ms / 1000).strftime("%H:%M:%S"), letter.service,
                       f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}", letter.reason,
                       f"{letter.project_id}:{letter.item_id}" if letter.item_id else "", letter.detail[:200])
    console.print(newest)
    if replay:
        sent = client.replay_dead_letters(state.kafka_bootstrap, letters)
        skipped = sum(letter.payload_truncated for letter in letters)
        console.print(f"replayed {sent} records to their source topics" + (
            f"; {skipped} letters of too-large records hold only their head and were not replayed" if skipped else ""))


def write_export(state: StackState, project: str, out: Path, fmt: ExportFormat = ExportFormat.JSONL) -> dict:
    """The project's final labels (latest version per item, from labels.final) at `out`, as JSONL or
    as DPO pairs, and its datasheet beside them (`<out>.datasheet.md` and `.json`); returns the
    datasheet (with the DPO counts under "dpo")."""
    labels = client.read_final_labels(state.kafka_bootstrap, project)
    spec = client.get_project(state.grpc_target("ingest"), project)
    workers = client.list_workers(state.grpc_target("dispatcher"), project)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet = datasheet.datasheet(spec, list(labels.values()), workers)
    if fmt == ExportFormat.DPO:
        if not is_preference(spec):
            raise _fail(f"project {project!r} is {spec.task}: --format dpo needs a pairwise or best_of_n project")
        sheet["dpo"] = exports.write_dpo(labels.values(), accepted_items(state, project), out)
    else:
        with out.open("w") as handle:
            for label in sorted(labels.values(), key=lambda x: x.item_id):
                row = client.final_label_json(label)
                if is_multi_label(spec):
                    row = exports.multi_hot_row(label, spec, row)
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    datasheet_path(out, ".json").write_text(json.dumps(sheet, indent=2))
    datasheet_path(out, ".md").write_text(datasheet.markdown(sheet))
    return sheet


def datasheet_path(out: Path, suffix: str) -> Path:
    return out.with_name(f"{out.stem}.datasheet{suffix}")


def accepted_items(state: StackState, project: str) -> dict[str, events_pb2.Item]:
    """The project's items as ingest accepted them (labels.final carries choices, not texts)."""
    return {item.item_id: item for item in client.read_topic(state.kafka_bootstrap, Topics.ITEMS_ACCEPTED,
                                                             events_pb2.Item) if item.project_id == project}


@app.command(name="leaderboard")
def leaderboard_command(project: Annotated[str, typer.Option()],
                        out: Annotated[Path | None, typer.Option(help="Also write the standings as JSON")] = None,
                        run_dir: RunDir = None) -> None:
    """Rank the sources that wrote a preference project's responses (e.g. models) from its final
    choices: Bradley-Terry strengths, wins and items, best first."""
    state = _state(run_dir)
    labels = client.read_final_labels(state.kafka_bootstrap, project)
    standings = exports.leaderboard(labels.values(), accepted_items(state, project))
    if not standings:
        raise _fail(f"project {project!r} has no final choices between responses that name their source; "
                    "give each response a source (e.g. the model that wrote it) when you submit items")
    table = Table(title=f"{project}: who wrote the better responses ({len(labels)} final labels)")
    for column in ("rank", "source", "strength (log-odds)", "P(beats an average source)", "wins", "items"):
        table.add_column(column)
    for rank, row in enumerate(standings, 1):
        table.add_row(str(rank), row.source, f"{row.score:+.2f}", f"{row.win_probability:.1%}", f"{row.wins:g}",
                      str(row.items))
    console.print(table)
    if out is not None:
        out.write_text(json.dumps([dataclasses.asdict(row) for row in standings], indent=2))
        console.print(f"wrote {out}")


@app.command()
def export(project: Annotated[str, typer.Option()], out: Annotated[Path, typer.Option()],
           fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl: final labels; dpo: "
                                                     "{prompt, chosen, rejected} pairs (preference projects)")]
           = ExportFormat.JSONL, run_dir: RunDir = None) -> None:
    """Write the project's final labels (latest version per item) from labels.final as JSONL, or as
    DPO pairs, and a datasheet beside them: the people behind the labels, their hours and pay, who
    decided what, the rules."""
    try:
        sheet = write_export(_state(run_dir), project, out, fmt)
    except grpc.RpcError as exc:
        raise _fail(f"cannot export {project!r}: {exc.details()} (is the stack up and the project applied?)") from exc
    what = f"{sheet['final_labels']} final labels"
    if "dpo" in sheet:
        dpo = sheet["dpo"]
        what = (f"{dpo['pairs']} DPO pairs from {sheet['final_labels']} final labels ({dpo['ties']} ties give none"
                + (f"; {dpo['missing_items']} labels whose items are no longer on items.accepted were left out"
                   if dpo["missing_items"] else "") + ")")
    console.print(f"wrote {what} to {out} and their datasheet to {datasheet_path(out, '.md')}")


@app.command()
def workers(project: Annotated[str, typer.Option()],
            gold: Annotated[Path, typer.Option(help="Items file with gold_label: what simulated workers know")],
            count: int = 8, accuracy: float = 0.85, answer_ms: float = 30.0,
            behaviour: Annotated[str, typer.Option(help=f"One of {', '.join(BEHAVIOURS)}")] = "honest",
            fatigue: Annotated[float, typer.Option(help="Accuracy lost per 100 answers")] = 0.0,
            duration: Annotated[float, typer.Option(help="Seconds to work")] = 60, run_dir: RunDir = None) -> None:
    """Run simulated workers (a profile: accuracy, speed, behaviour, fatigue) against the dispatcher."""
    state = _state(run_dir)
    known = gold_by_text(load_items(gold))
    try:
        profile = WorkerProfile(accuracy, answer_ms, behaviour=behaviour, fatigue=fatigue)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    with Workforce(state.grpc_target("dispatcher"), project, known, count,
                   profile) as force:
        time.sleep(duration)
    console.print(f"{force.counters.answers} answers, {force.counters.correct} correct, "
                  f"{len(force.counters.blocked)} workers blocked")


@app.command("replay-snow")
def replay_snow(seeds: int = 3, extra_fraction: float = 0.2,
                out: Annotated[Path, typer.Option()] = REPO_ROOT / "reports" / "replay" / "snow_rte.json") -> None:
    """Replay the real Snow RTE crowd under the worker rules, with and without random workers."""
    from labelstream.simulation.snow import load_snow, replay

    data = load_snow()
    runs = []
    for seed in track(range(seeds), description="replaying", console=console):
        runs.append({"seed": seed, "without_extra": replay(data, seed=seed).as_dict(),
                     "with_extra": replay(data, extra_fraction=extra_fraction, seed=seed).as_dict()})
    table = Table(title="Snow RTE replay")
    for column in ("seed", "accuracy", "accuracy with random", "random stopped in 20", "real blocked"):
        table.add_column(column, justify="right")
    for run in runs:
        a, b = run["without_extra"], run["with_extra"]
        table.add_row(str(run["seed"]), f"{a['accuracy']:.4f}", f"{b['accuracy']:.4f}",
                      f"{b['extra_stopped_within_20_fraction']:.1%}", f"{b['real_blocked_fraction']:.1%}")
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"extra_fraction": extra_fraction, "runs": runs}, indent=2))
    console.print(f"written to {out}")


@app.command("create-worker")
def create_worker(worker_id: str, rotate: bool = False, run_dir: RunDir = None) -> None:
    """Create an annotator account and print its token (shown once; only its hash is stored)."""
    state = _state(run_dir)
    try:
        token = sign_up(state.grpc_target("dispatcher"), [worker_id], rotate)[worker_id]
    except grpc.RpcError as exc:
        raise _fail(f"cannot create worker {worker_id!r}: {exc.details()}") from exc
    console.print(f"worker {worker_id}: sign in at {state.web_url('dispatcher')} with this token:")
    print(token)  # noqa: T201 - the token is the command's output


@app.command("create-owner")
def create_owner(project: str, owner_id: str, rotate: bool = False, run_dir: RunDir = None) -> None:
    """Make a token for an owner of one project (it may apply the project, submit its items, read its
    stats and decisions, manage its gold and workers); shown once, only its hash is stored."""
    state = _state(run_dir)
    try:
        token = client.create_project_owner(state.grpc_target("ingest"), project, owner_id, rotate)
    except grpc.RpcError as exc:
        raise _fail(f"cannot create owner {owner_id!r} of {project!r}: {exc.details()}") from exc
    console.print(f"owner {owner_id} of project {project}: send 'authorization: Bearer <token>' with this token, "
                  f"or sign in to the dashboard at {state.web_url('monitor')} with it:")
    print(token)  # noqa: T201 - the token is the command's output


@app.command("add-gold")
def add_gold(project: Annotated[str, typer.Option()],
             items: Annotated[Path, typer.Option(help="JSONL/CSV items with gold_label: hidden control tasks")],
             run_dir: RunDir = None) -> None:
    """Add hidden gold tasks to a project (items need a gold_label)."""
    state = _state(run_dir)
    try:
        rows = [r for r in load_items(items) if r.get("gold_label")]
    except InputFileError as exc:
        raise _fail(str(exc)) from exc
    if not rows:
        raise _fail(f"{items}: no item has a gold_label; gold tasks need their true label")
    try:
        added, total = client.add_gold(state.grpc_target("dispatcher"), project, rows)
    except grpc.RpcError as exc:
        raise _fail(f"cannot add gold to {project!r}: {exc.details()}") from exc
    console.print(f"{added} gold tasks added; project {project} has {total}")


def print_report(data: dict) -> None:
    table = Table(title=f"labelstream report: {data['project_id']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    acc = data["accuracy"]

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    sets = data.get("multi_label")
    accuracy = "exact-set accuracy" if sets else "accuracy"   # a multi_label item is right when its whole set is
    rows = [
        ("items accepted", str(data["items"])), ("final labels", str(data["final_labels"])),
        ("auto-accepted fraction", pct(data["auto_fraction"])), ("human fraction", pct(data["human_fraction"])),
        ("human tasks / answers", f"{data['human_tasks']} / {data['human_responses']}"),
        *((f"{accuracy} vs gold, {name}", f"{pct(acc[path]['accuracy'])} ({acc[path]['with_gold']} items)")
          for path, name in (("overall", "overall"), ("auto", "auto path"), ("human", "human path"))),
        *(multi_label_rows(sets) if sets else ()),
        ("throughput", f"{data['throughput_items_per_s']:.1f} items/s"),
        ("latency ingest->final p50 / p95", f"{data['latency_ms']['p50']:.0f} / {data['latency_ms']['p95']:.0f} ms"),
    ]
    if "wall_time_s" in data:
        rows.append(("demo wall time", f"{data['wall_time_s']:.0f} s"))
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


def multi_label_figures(state: StackState, spec: events_pb2.ProjectSpec) -> dict:
    """A multi_label project's final sets against the gold sets its items were accepted with, per
    path, and the sets the model alone gave (its prediction of each item, payoff.score_sets)."""
    gold = {item_id: parse_label_set(item.gold_label) or []
            for item_id, item in accepted_items(state, spec.project_id).items() if item.gold_label}
    finals = client.read_final_labels(state.kafka_bootstrap, spec.project_id)
    predicted = {p.item_id: model_set(p.probabilities, spec)
                 for p in client.read_topic(state.kafka_bootstrap, Topics.PREDICTIONS, events_pb2.Prediction)
                 if p.project_id == spec.project_id}
    return {**payoff.set_metrics_by_path(list(spec.labels), finals.values(), gold),
            "model_only": payoff.score_sets(list(spec.labels), predicted, gold)}


def multi_label_rows(sets: dict) -> list[tuple[str, str]]:
    """The report's rows of a multi_label project's final sets against the reference sets, per path,
    and of the model's own sets (multi_label_figures)."""
    def figure(value: float | None, percent: bool = False) -> str:
        return "n/a" if value is None else f"{value:.1%}" if percent else f"{value:.3f}"

    return [(f"sets vs gold, {name}: micro-F1 / macro-F1 / Hamming loss",
             f"{figure(sets[path]['micro_f1'])} / {figure(sets[path]['macro_f1'])} / "
             f"{figure(sets[path]['hamming_loss'], percent=True)} ({sets[path]['items']} items)")
            for path, name in (("overall", "overall"), ("auto", "auto path"), ("human", "human path"),
                               ("model_only", "model alone")) if path in sets]


def _stream_in_waves(state: StackState, project_id: str, rows: list[dict], wave_size: int,
                     stall_s: float) -> list[payoff.Wave]:
    """Publish the items a wave at a time, each wave once the one before has its final labels, so
    that every routing decision sees what people verified before it, as in a stream that runs for
    days; one line per wave shows the human fraction falling."""
    waves: list[payoff.Wave] = []
    before = None
    table = Table(title="the stream, wave by wave")
    for column in ("items so far", "to people", "auto-accepted", "auto accuracy (gold)", "accuracy (gold)",
                   "elapsed"):
        table.add_column(column, justify="right")
    started = time.monotonic()
    done = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("auto {task.fields[auto]} · human {task.fields[human]}"), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("final labels", total=len(rows), auto=0, human=0)

        def show(stats) -> None:
            progress.update(task, completed=stats.final_labels, auto=stats.auto_path.final_labels,
                            human=stats.human_path.final_labels)

        for start in range(0, len(rows), wave_size):
            wave_rows = rows[start:start + wave_size]
            client.publish_json_items(state.kafka_bootstrap, project_id, wave_rows)
            done += len(wave_rows)
            after = client.wait_for_final_labels(state.grpc_target("monitor"), project_id, done,
                                                 timeout_s=float("inf"), on_progress=show, stall_s=stall_s)
            wave = payoff.wave_between(before, after, len(wave_rows))
            waves.append(wave)
            before = after
            auto_accuracy = wave.auto_accuracy
            progress.console.print(
                f"wave {len(waves)}: {done} items, {wave.human_fraction:.0%} to people, "
                f"auto accuracy {'n/a' if auto_accuracy is None else f'{auto_accuracy:.1%}'}")
            table.add_row(str(done), f"{wave.human_fraction:.1%}", str(wave.auto),
                          "n/a" if auto_accuracy is None else f"{auto_accuracy:.1%} ({wave.auto_with_gold})",
                          "n/a" if wave.accuracy is None else f"{wave.accuracy:.1%}",
                          f"{time.monotonic() - started:.0f} s")
    Console(width=160).print(table)
    return waves


def print_payoff(result: dict) -> None:
    guarantee, costs, pay = result["guarantee"], result["costs"], result["hourly_pay"]
    if guarantee.get("form") == "per_label":
        console.print(
            f"guarantee, per label: every label's auto-accepted presence and absence right at least "
            f"{guarantee['target_accuracy']:.2f} of the time, and at most {1 - guarantee['target_accuracy']:.2f} of "
            f"its occurrences auto-marked absent, at {guarantee['confidence_level']:.0%} confidence; "
            f"{guarantee['auto_accepted']} items auto-accepted (per-label precision and recall of the auto path in "
            f"report.json, multi_label.auto.per_label)")
    elif guarantee["auto_accuracy"] is None:
        console.print(f"guarantee: auto-accepted accuracy >= {guarantee['target_accuracy']:.2f} at "
                      f"{guarantee['confidence_level']:.0%} confidence; nothing with gold was auto-accepted")
    else:
        low, high = guarantee["interval_95"]
        console.print(
            f"guarantee: auto-accepted accuracy >= {guarantee['target_accuracy']:.2f} at "
            f"{guarantee['confidence_level']:.0%} confidence -> measured {guarantee['auto_accuracy']:.1%} on "
            f"{guarantee['auto_with_gold']} auto-accepted items with gold (95% interval {low:.1%}-{high:.1%}): "
            + ("[green]held[/green]" if guarantee["held"] else "[red]below the target on this run[/red]"))
    table = Table(title=f"cost: {costs['pay_per_answer']:.3f} per answer x {costs['overlap']} answers per item; "
                        f"model time {costs['model_seconds']:.1f} s at {costs['gpu_hour_price']:.2f} per GPU-hour")
    # a multi_label item is right when its whole set is (the set figures are in the report above)
    accuracy = "exact-set accuracy (gold)" if guarantee.get("form") == "per_label" else "accuracy (gold)"
    for column in ("labeling", "cost", "per item", accuracy):
        table.add_column(column, justify="right")
    names = {"all_human": "all human", "hybrid": "hybrid (this run)", "model_only": "model only"}
    for key, row in costs["rows"].items():
        accuracy = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.1%}"
        table.add_row(names[key], f"{row['cost']:.2f}", f"{row['per_item']:.4f}", accuracy)
    Console(width=160).print(table)
    if costs["saved_vs_all_human"] is not None:
        console.print(f"saved against all-human labeling: {costs['saved_vs_all_human']:.1%}")
    if pay["workers"]:
        console.print(
            f"workers' effective hourly pay (measured task time): median {pay['median']:.2f}, lowest "
            f"{pay['min']:.2f}, wage floor {pay['floor']:.2f}; the simulated workers answer in milliseconds, so "
            f"these rates are far above what people at human speed earn at the same pay per answer")


@app.command()
def demo(items: Annotated[int, typer.Option(help="How many items to label")] = 2000,
         project_file: Annotated[Path, typer.Option("--project")] = GUARANTEE_DEMO_DIR / "demo.yaml",
         items_file: Annotated[Path, typer.Option("--items-file", help="Items with gold_label")]
         = GUARANTEE_DEMO_DIR / "pool.jsonl",
         wave_size: Annotated[int, typer.Option(help="Items published together; each wave waits for the "
                                                     "one before to be final")] = 250,
         worker_count: Annotated[int, typer.Option("--workers")] = 12,
         worker_accuracy: Annotated[float, typer.Option(help=(
             "Each simulated worker's accuracy. People's majority labels are what the router measures "
             "the model against: at 0.9 and three answers they are about 97% right"))] = 0.9,
         worker_sensitivity: Annotated[float, typer.Option(help=(
             "Multi-label projects: the share of an item's labels each simulated worker ticks"))]
         = WorkerProfile.sensitivity,
         worker_specificity: Annotated[float, typer.Option(help=(
             "Multi-label projects: the share of the labels an item lacks each worker leaves out"))]
         = WorkerProfile.specificity,
         answer_ms: float = 30.0, base_port: int = 19000,
         gpu_hour_price: Annotated[float, typer.Option(help="Price of an hour of model server time")] = 2.0,
         keep_running: Annotated[bool, typer.Option(help="Leave the stack up afterwards")] = False) -> None:
    """Start the stack, stream AG News articles through the model and simulated workers with routing under
    a guarantee, report accuracy, the guarantee, the falling human fraction and the cost, export, stop.
    Any project and items file with gold can take AG News's place; a multi_label project's report adds
    micro- and macro-F1 and Hamming loss of the final sets, overall and per path."""
    started = time.monotonic()
    try:
        spec = load_project(project_file)
        rows = load_items(items_file)[:items]
    except InputFileError as exc:
        raise _fail(str(exc)) from exc
    stack = LocalStack(_new_run_dir(), base_port, progress=console.log)
    try:
        state = stack.start()
        _print_endpoints(state)
        client.apply_project(state.grpc_target("ingest"), spec)
        spec = client.get_project(state.grpc_target("ingest"), spec.project_id)
        with Workforce(state.grpc_target("dispatcher"), spec.project_id, gold_by_text(rows),
                       worker_count, WorkerProfile(worker_accuracy, answer_ms, sensitivity=worker_sensitivity,
                                                   specificity=worker_specificity)):
            waves = _stream_in_waves(state, spec.project_id, rows, wave_size, stall_s=600)
        stats = client.project_stats(state.grpc_target("monitor"), spec.project_id)
        data = client.report_dict(stats, elapsed_s=time.monotonic() - started)
        if is_multi_label(spec):
            data["multi_label"] = multi_label_figures(state, spec)
        print_report(data)
        run_dir = Path(state.run_dir)
        workers = client.list_workers(state.grpc_target("dispatcher"), spec.project_id)
        summary = client.dashboard(state.web_url("monitor"), spec.project_id, state.admin_token)["summary"]
        model_seconds = client.model_compute_seconds(f"127.0.0.1:{state.ports.triton_grpc}",
                                                     list(spec.models) or [spec.model])
        data["payoff"] = {
            "guarantee": payoff.guarantee(spec, stats),
            "costs": payoff.cost_table(
                spec, len(rows), sum(w.earnings for w in workers), model_seconds, gpu_hour_price,
                data["multi_label"]["model_only"]["exact_match"] if is_multi_label(spec) else summary["model_accuracy"],
                data["accuracy"]["overall"]["accuracy"]),
            "hourly_pay": payoff.hourly_pay(workers, spec.workers.min_hourly_wage),
            "waves": [{**vars(w), "human_fraction": w.human_fraction, "accuracy": w.accuracy} for w in waves],
        }
        print_payoff(data["payoff"])
        payoff.plot_waves(waves, spec.target_accuracy, str(run_dir / "human_fraction.png"),
                          f"{spec.name}: human fraction as the stream goes on")
        sheet = write_export(state, spec.project_id, run_dir / "export" / "labels.jsonl")
        data["wall_time_s"] = round(time.monotonic() - started, 1)
        report_path = run_dir / "report.json"
        report_path.write_text(json.dumps(data, indent=2))
        console.print(f"report written to {report_path}; the human fraction over time in "
                      f"{run_dir / 'human_fraction.png'}; {sheet['final_labels']} labels exported to "
                      f"{run_dir / 'export' / 'labels.jsonl'} with their datasheet "
                      f"{datasheet_path(run_dir / 'export' / 'labels.jsonl', '.md')}")
        console.print(f"whole command: {data['wall_time_s']:.0f} s")
    except (StackError, TimeoutError, InputFileError) as exc:
        raise _fail(str(exc)) from exc
    finally:
        if not keep_running:
            stack.stop()


@app.command("evaluate-routing")
def evaluate_routing(
        project_file: Annotated[Path, typer.Option("--project")] = DEMO_DIR / "project.yaml",
        items_file: Annotated[Path, typer.Option("--items", help="Items with gold_label")] = DEMO_DIR / "pool.jsonl",
        target: float = 0.95, seeds: int = 20, confidence_level: float = 0.95, bound: str = "wilson",
        human_accuracy: float = 1.0,
        learn: Annotated[bool, typer.Option(help="Refit the encoder head on each split's verified items")] = True,
        threshold_method: Annotated[str, typer.Option(
            help="fixed_sequence_pooled (default), fixed_sequence_per_class, or pointwise_scan (the former, "
                 "unsound rule, as a baseline)")] = "fixed_sequence_pooled",
        out: Annotated[Path, typer.Option(help="Folder for the PNG and JSON")] = REPO_ROOT / "reports" / "routing",
) -> None:
    """Accuracy versus human fraction for each routing strategy, with real model predictions (PNG + JSON)."""
    import numpy as np

    from labelstream.models.local import load_encoder_classifier, project_dict
    from labelstream.routing.evaluation import EvaluationData, evaluate, plot, refit_head_predictions
    from labelstream.routing.thresholds import ThresholdMethod

    if threshold_method not in set(ThresholdMethod):
        raise _fail(f"--threshold-method must be one of {', '.join(ThresholdMethod)}")
    try:
        spec, rows = load_project(project_file), load_items(items_file)
    except InputFileError as exc:
        raise _fail(str(exc)) from exc
    names = list(spec.labels)
    rows = [r for r in rows if r.get("gold_label") in names]
    if len(rows) < 100:
        raise _fail(f"{items_file} has {len(rows)} items with a gold_label among {names}; at least 100 are needed")
    texts = [r["text"] for r in rows]
    labels = np.array([names.index(r["gold_label"]) for r in rows])
    console.log(f"predicting {len(texts)} items with the encoder model (as served by Triton)")
    classifier = load_encoder_classifier()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("embedding", total=len(texts))
        for start in range(0, len(texts), 256):
            classifier.embed(texts[start:start + 256])
            progress.advance(task, len(texts[start:start + 256]))
        probabilities = classifier.predict(texts, project_dict(spec)).astype(float)
        data = EvaluationData(probabilities, labels, np.array([len(t) for t in texts], dtype=float),
                              refit_head_predictions(classifier, project_dict(spec), texts, names, labels)
                              if learn else None)
        runs = progress.add_task("seeds", total=seeds)
        summary = evaluate(data, target, seeds, confidence_level, bound, human_accuracy,
                           progress=lambda _seed: progress.advance(runs), threshold_method=threshold_method)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{spec.project_id}-target{target:.2f}"
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2))
    plot(summary, str(out / f"{name}.png"), f"{spec.name or spec.project_id}")
    table = Table(title=f"routing strategies, target accuracy {target:.2f} on auto-accepted items")
    for column in ("strategy", "AUC", f"human fraction for final acc. {target:.2f}", "operating point"):
        table.add_column(column)
    for strategy, result in summary["strategies"].items():
        point = result.get("operating_point")
        text = (f"human {point['mean_human_fraction']:.3f}, auto acc. {point['mean_auto_accuracy']:.3f}, "
                f"{point['runs_meeting_target']}/{seeds} runs meet target") if point else ""
        table.add_row(strategy, f"{result['auc']:.4f}", f"{result['human_fraction_for_final_accuracy']:.3f}", text)
    Console(width=160).print(table)
    console.print(f"wrote {out / (name + '.png')} and {out / (name + '.json')}")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app()


if __name__ == "__main__":
    sys.exit(main())

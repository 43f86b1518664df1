"""Figures: Pareto frontiers, a law against its runs, and the raw run grid.

Every function returns a matplotlib Figure (tests inspect its artists) and
saves it when given a path: PNG, SVG or PDF by the extension. Figures are
built with ``matplotlib.figure.Figure``, not pyplot, so no GUI backend is
touched (PNG goes through Agg) and nothing is kept alive by a global
registry. matplotlib is imported inside the functions to keep the CLI's
start-up fast.

Artists carry a gid naming what they show ("point", "frontier", "measured",
"optimum", "censored", "law", "band", "reference", "run"), so tests and
users can find them.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from capgap.core.errors import InputError
from capgap.laws.base import Law, StudentOptimum
from capgap.runs.groups import nominal_sizes
from capgap.runs.records import RunRecord, metric_direction
from capgap.sizes.units import format_size

if TYPE_CHECKING:
    from capgap.plots.pareto import ParetoResult
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGURE_FORMATS = ("png", "svg", "pdf")
REFERENCE_RATIO = 2.5  # T* = 2.5·S: the secondary sources' reading of the law of capacity gap
MAX_BUBBLE_AREA = 900.0  # points², for the largest model of a Pareto figure
# On a figure, students within 10% in size share one curve (the fit groups within 2%): pruned
# students of one target differ by a few parameters, and nearby targets would crowd the legend.
FIGURE_SIZE_TOLERANCE = 0.10
_SIZE_WORD = {"total": "total parameters", "nonembed": "non-embedding parameters"}


def figure_format(path: str | Path) -> str:
    """'png', 'svg' or 'pdf' from a figure path (png for a device or pipe without one); anything else is bad input.

    A path that cannot be written is refused here too (capgap.core.output.check_output), before any drawing.
    """
    from capgap.core.output import check_output, writes_through

    check_output(path, what="figure")
    fmt = Path(path).suffix.lower().lstrip(".")
    if not fmt and writes_through(path):  # --out /dev/stdout, /dev/null
        fmt = "png"
    if fmt not in FIGURE_FORMATS:
        raise InputError(f"figure format {fmt or '(none)'!r} is not supported; end --out with "
                         f"{', '.join('.' + f for f in FIGURE_FORMATS)}", where=str(path))
    return fmt


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write the figure by its extension, whole or not at all (capgap.core.output.write_output)."""
    from capgap.core.output import write_output

    path = Path(path)
    fmt = figure_format(path)
    write_output(path, lambda handle: figure.savefig(handle, format=fmt, dpi=150, bbox_inches="tight"), what="figure")
    return path


def _label_log(axis, text) -> None:  # noqa: ANN001 (a matplotlib Axis; text: value -> tick label)
    """Major ticks of a log axis at 1, 2 and 5 per decade, labelled by ``text``; minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: text(value)))
    axis.set_minor_formatter(NullFormatter())


def _label_sizes(*axes) -> None:  # noqa: ANN002 (matplotlib Axis objects)
    """Log axes of parameter counts read 100M, 1B rather than 10^8."""
    for axis in axes:
        _label_log(axis, format_size)


def _label_ratios(axis) -> None:  # noqa: ANN001 (a matplotlib Axis)
    """A log axis of size ratios reads 2x, 5x, 10x rather than 2×10⁰."""
    _label_log(axis, lambda value: f"{value:g}x")


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _finish(figure: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        save_figure(figure, path)
    return figure


# -- Pareto ------------------------------------------------------------------

def pareto_figure(result: ParetoResult, path: str | Path | None = None) -> Figure:
    """Compute (log axis) against performance: bubbles sized by model size where
    known, names beside points, each group's frontier as a step line."""
    if path is not None:
        figure_format(path)  # refuse a bad --out before drawing
    figure = _new_figure(9, 6)
    ax = figure.add_subplot()
    largest = max((p.size for p in result.points if p.size), default=None)
    groups = list(dict.fromkeys(p.group for p in result.points))
    frontiers = result.frontiers()
    for index, group in enumerate(groups):
        color = f"C{index}"
        members = [p for p in result.points if p.group == group]
        for sized in (True, False):
            chosen = [p for p in members if bool(p.size) == sized]
            if not chosen:
                continue
            area = [max(MAX_BUBBLE_AREA * p.size / largest, 12.0) for p in chosen] if sized else 36.0
            ax.scatter([p.compute for p in chosen], [p.performance for p in chosen], s=area,
                       marker="o" if sized else "D", color=color, alpha=0.45 if sized else 0.8,
                       edgecolors=["black" if p.on_frontier else color for p in chosen],
                       linewidths=[1.6 if p.on_frontier else 0.6 for p in chosen], gid="point",
                       label=(group or "models") + ("" if sized else " (size unknown)"))
        line = frontiers.get(group, [])
        ax.plot([p.compute for p in line], [p.performance for p in line], drawstyle="steps-post",
                color=color, linewidth=1.8, gid="frontier", label=f"frontier{' (' + group + ')' if group else ''}")
    ax.set_xscale("log")
    ax.set_xlabel(result.compute_label)
    ax.set_ylabel(textwrap.fill(result.performance_label, 60))
    sized_note = " (bubble area ∝ parameters)" if largest else ""
    ax.set_title(result.title + sized_note + "; frontier points named")
    ax.grid(True, which="both", alpha=0.25)
    _legend_outside(ax, markerscale=0.5)
    named = [p for p in result.points if p.on_frontier]
    areas = [max(MAX_BUBBLE_AREA * p.size / largest, 12.0) if p.size and largest else 36.0 for p in named]
    _place_labels(figure, ax, [(textwrap.fill(p.name, 30), p.compute, p.performance) for p in named], areas)
    return _finish(figure, path)


# Where a label may sit from its point (points): right-above first, then around it, then further out.
_LABEL_OFFSETS = [(dx * r, dy * r) for r in (1, 2, 3.5, 5) for dx, dy in
                  ((6, 4), (6, -12), (-6, 4), (-6, -12), (0, 12), (0, -20))]


_LEADER = {"arrowstyle": "-", "color": "0.5", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 3}


def _place_labels(figure: Figure, ax: Axes, labels: Sequence[tuple[str, float, float]],
                  areas: Sequence[float]) -> None:
    """Name each point with an annotation that overlaps no other label and no named point's bubble (``areas``,
    points²) and stays inside the axes: the first free offset of ``_LABEL_OFFSETS`` (a thin leader line once
    moved away), else the least crowded one."""
    from matplotlib.transforms import Bbox

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw_without_rendering()  # settle the layout, so label boxes are where they will be drawn
    frame = ax.get_window_extent(renderer)
    scale = figure.dpi / 72.0  # points -> pixels
    bubbles, placed = [], []
    for (_, x, y), area in zip(labels, areas):  # the bubbles themselves are taken
        cx, cy = ax.transData.transform((x, y))
        r = 0.5 * np.sqrt(area) * scale
        bubbles.append(Bbox.from_extents(cx - r, cy - r, cx + r, cy + r))
    for name, x, y in labels:
        best = None
        for dx, dy in _LABEL_OFFSETS:
            leader = None if (dx, dy) == _LABEL_OFFSETS[0] else _LEADER
            note = ax.annotate(name, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=8, gid="name",
                               ha="left" if dx >= 0 else "right", annotation_clip=False, arrowprops=leader)
            note.set_in_layout(False)  # the layout is settled: labels must not move the axes
            note.update_positions(renderer)
            box = Text.get_window_extent(note, renderer)  # the words alone, not the leader line
            # cost: leaving the axes, then covering another label, then covering a named bubble
            clashes = (0 if _inside(box, frame) else 100) + 10 * sum(box.overlaps(other) for other in placed) \
                + sum(box.overlaps(other) for other in bubbles)
            if best is None or clashes < best[0]:
                if best is not None:
                    best[1].remove()
                best = (clashes, note, box)
            else:
                note.remove()
            if clashes == 0:
                break
        placed.append(best[2])


def _inside(box, frame) -> bool:  # noqa: ANN001 (matplotlib Bbox)
    return box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1


# -- law against runs ----------------------------------------------------------

def law_figure(law: Law, runs: Sequence[RunRecord] | None = None, path: str | Path | None = None,
               all_runs: bool = False) -> Figure:
    """Two panels. Left: the student metric against teacher size: each group's fitted curve through its
    runs (seeds as points, their mean joined), each per-student optimum on its curve with its interval
    (censored ones as arrows). Only the runs the law was fitted on are drawn; ``all_runs`` adds the rest,
    faded. Right: optimal teacher against student size with the law, its band and the reference T* = 2.5·S."""
    if path is not None:
        figure_format(path)
    figure = _new_figure(15, 5.8)
    left, right = figure.subplots(1, 2)
    drawn = _student_curves(left, law, list(runs or []), all_runs)
    _optimal_teacher_panel(right, law)
    file = law.file
    if not file.fitted:
        title = f"law {file.law!r}: a reference reading, fitted on no runs"
    else:
        title = f"law {file.law!r} fitted on {file.n_runs} runs ({file.metric}, {file.direction} is better)"
    figure.suptitle(title + (f"; drawn: {drawn}" if drawn else ""))
    return _finish(figure, path)


def fitted_runs(law: Law, runs: Sequence[RunRecord]) -> tuple[list[RunRecord], list[RunRecord]]:
    """The runs of the kind the law was fitted on (its metric, its student inits and kinds), and the others."""
    from capgap.runs.kinds import law_kinds

    inits, kinds = set(law.file.regime.student_init), set(law_kinds(law.file))
    mine = [r for r in runs if law.file.metric in r.metrics and (not inits or r.student_init in inits)
            and r.student_kind in kinds]
    chosen = {id(r) for r in mine}
    return mine, [r for r in runs if id(r) not in chosen]


def _student_curves(ax: Axes, law: Law, runs: list[RunRecord], all_runs: bool) -> str:
    """The left panel; returns what it drew, for the title ('36 runs in 4 groups')."""
    file = law.file
    measure = file.size_measure
    mine, others = fitted_runs(law, runs)
    groups = _groups_of(mine, file)
    keys = groups.keys if groups else []
    students = sorted({k.student_params for k in keys} | {o.student_params for o in file.optima})
    colors = _size_colors(students)
    inits = sorted({k.student_init for k in keys})
    curves = _fitted_curves(law, groups)
    drawn_runs = 0
    for index, key in enumerate(keys):
        color = colors[key.student_params]
        linestyle, marker = _init_style(key.student_init, inits)
        rows = groups.group == index
        teachers = np.exp(groups.log_teacher[rows])
        values = groups.badness[rows] * (1.0 if file.direction == "lower" else -1.0)
        drawn_runs += int(rows.sum())
        label = f"S = {format_size(key.student_params)}" + (f", {key.student_init}" if len(inits) > 1 else "") \
            + (f", {key.student_kind} (active size)" if key.student_kind != "dense" else "")
        ax.scatter(teachers, values, color=color, marker=marker, s=20, zorder=3, gid="measured")
        unique = np.unique(teachers)
        ax.plot(unique, [values[teachers == t].mean() for t in unique], color=color, linestyle=":", linewidth=1,
                alpha=0.8, gid="mean")
        curve = curves.get(index)
        if curve is not None:
            ax.plot(*curve, color=color, linestyle=linestyle, linewidth=1.8, gid="curve", label=label)
        optimum = _optimum_of(key, file.optima)
        if optimum is not None and curve is not None:
            y = float(np.interp(np.log(optimum.teacher_params), np.log(curve[0]), curve[1]))
            _mark_optimum(ax, optimum.teacher_params, y, optimum, color)
    faded = []
    if all_runs and others:
        faded = [r for r in others if file.metric in r.metrics and r.size("teacher", measure)]
        ax.scatter([r.size("teacher", measure) for r in faded], [r.metrics[file.metric] for r in faded], color="0.6",
                   marker="x", s=14, alpha=0.45, zorder=2, gid="other_runs",
                   label=f"other runs, not fitted ({', '.join(sorted({r.student_init for r in faded}))})")
    ax.set_xscale("log")
    _label_sizes(ax.xaxis)
    ax.set_xlabel(f"teacher size ({_SIZE_WORD[measure]})")
    ax.set_ylabel(f"student {file.metric} ({file.direction} is better)")
    ax.set_title("student metric against teacher size: fitted curves, runs, optima")
    if drawn_runs:  # the runs set the scale: a curve's far end may not squash them
        values = [*(groups.badness * (1.0 if file.direction == "lower" else -1.0)),
                  *([r.metrics[file.metric] for r in faded] if all_runs and others else [])]
        low, high = min(values), max(values)
        pad = 0.08 * (high - low or abs(high) or 1.0)
        ax.set_ylim(low - pad, high + pad)
    if not drawn_runs:
        why = "no runs: a reference law is fitted on none" if not file.fitted else "no measured runs given (--runs)"
        ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", gid="no_runs")
        ax.tick_params(labelbottom=False, labelleft=False)  # the axes hold nothing to read
    ax.grid(True, which="both", alpha=0.25)
    if drawn_runs:
        ax.scatter([], [], marker="o", color="0.4", s=20, label="runs (each seed a point; dotted: their mean)")
        ax.errorbar([], [], xerr=[], fmt="*", markersize=11, color="0.4", markeredgecolor="black",
                    label="optimum on its curve (interval)")
        _legend_outside(ax, title="student size")
    extra = f" (+{sum(1 for r in others if file.metric in r.metrics)} other runs faded)" if all_runs and others else ""
    return f"{drawn_runs} runs in {len(keys)} groups{extra}" if drawn_runs else ""


def _groups_of(runs: list[RunRecord], file):  # noqa: ANN001, ANN202 (a LawFile; RunGroups or None)
    """The runs grouped as the fit groups them, or None when no group has enough teachers."""
    from capgap.runs.groups import group_runs

    try:
        return group_runs(runs, file.metric, file.direction, file.size_measure) if runs else None
    except InputError:
        return None


def _fitted_curves(law: Law, groups) -> dict[int, tuple[np.ndarray, np.ndarray]]:  # noqa: ANN001
    """Per group index, the fitted model's curve over the group's teachers (never beyond them): the law's
    optimum and far shape, the group's baseline and curvatures profiled from its runs."""
    from capgap.fit.solver import HUBER_K
    from capgap.fit.onestage import group_curves

    file = law.file
    if groups is None or getattr(file, "bound", None) is not None or not file.diagnostics.model:
        return {}
    try:  # the model's own location at each group (a censored answer's estimate is its bound, not the location)
        log_location = np.log([getattr(_optimum_of(k, file.optima), "teacher_params", None)
                               or law.optimal_teacher(k.student_params, k.tokens).estimate for k in groups.keys])
    except InputError:
        return {}
    grid = np.linspace(groups.log_teacher.min(), groups.log_teacher.max(), 160)
    noise = file.diagnostics.noise
    delta = HUBER_K * noise if noise else np.inf
    fitted = group_curves(groups, log_location, file.diagnostics.shape, file.diagnostics.asymmetry, delta, grid,
                          file.diagnostics.skew)
    sign = 1.0 if file.direction == "lower" else -1.0
    spans = [(np.log(t[0]) - 1e-9, np.log(t[-1]) + 1e-9) for t in groups.teachers]
    return {g: (np.exp(grid[(grid >= a) & (grid <= b)]), sign * fitted[g][(grid >= a) & (grid <= b)])
            for g, (a, b) in enumerate(spans)}


def _optimum_of(key, optima: Sequence[StudentOptimum]) -> StudentOptimum | None:  # noqa: ANN001 (a GroupKey)
    """The law file's optimum of a group: same family, init, tokens and (within 2%) student size."""
    for optimum in optima:
        if optimum.family == key.family and optimum.student_init in (None, key.student_init) \
                and (optimum.tokens or None) == key.tokens \
                and abs(optimum.student_params - key.student_params) <= 0.02 * key.student_params:
            return optimum
    return None


def _legend_outside(ax: Axes, **kwargs) -> None:  # noqa: ANN003 (legend options)
    """The legend beside the axes, never over the data."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def _init_style(init: str, inits: Sequence[str]) -> tuple[str, str]:
    """Line style and marker of a student initialisation (pruned solid, scratch dashed, ...)."""
    index = list(inits).index(init) if init in inits else 0
    return ("-", "--", ":", "-.")[index % 4], "osD^"[index % 4]


def _mark_optimum(ax: Axes, x: float, y: float | None, optimum: StudentOptimum, color: str) -> None:
    """A star with its interval, or an arrow from the bound when the optimum is censored."""
    if y is None:
        return
    if optimum.censored:
        bound = _bound_of(optimum)
        _arrow(ax, (bound, y), (_beyond(bound, optimum.censored), y), color)
        return
    xerr = None
    if optimum.low is not None and optimum.high is not None:
        xerr = [[max(x - optimum.low, 0.0)], [max(optimum.high - x, 0.0)]]
    bars = ax.errorbar([x], [y], xerr=xerr, fmt="*", markersize=13, color=color, markeredgecolor="black",
                       capsize=4, zorder=4)
    bars.lines[0].set_gid("optimum")  # the marker, not its caps and bars


def _bound_of(optimum: StudentOptimum) -> float:
    """Where a censored optimum is drawn: its bound (the answer, widened where another law reads it past the
    edge), not the law's point past the ladder; that point where no bound was read."""
    return (optimum.high if optimum.censored == "at_most" else optimum.low) or optimum.teacher_params


def _beyond(bound: float, censored: str) -> float:
    """Where a censored optimum's arrow points: up from an 'at least' bound, down from 'at most'."""
    return bound * 1.6 if censored == "at_least" else bound / 1.6


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], color: str) -> None:
    ax.annotate("", xy=end, xytext=start, gid="censored", annotation_clip=False,
                arrowprops={"arrowstyle": "-|>", "color": color, "linewidth": 2, "mutation_scale": 16})
    ax.update_datalim([start, end])  # annotations do not widen the axes by themselves


def _optimal_teacher_panel(ax: Axes, law: Law) -> None:
    file = law.file
    measure_word = _SIZE_WORD[file.size_measure]
    for optimum in file.optima:
        x, y = optimum.student_params, optimum.teacher_params
        if optimum.censored:
            y = _bound_of(optimum)
            ax.scatter([x], [y], marker="^" if optimum.censored == "at_least" else "v", color="C3", s=50,
                       zorder=3, gid="censored")
            _arrow(ax, (x, y), (x, _beyond(y, optimum.censored)), "C3")
        else:
            yerr = None
            if optimum.low is not None and optimum.high is not None:
                yerr = [[max(y - optimum.low, 0.0)], [max(optimum.high - y, 0.0)]]
            bars = ax.errorbar([x], [y], yerr=yerr, fmt="o", color="C0", capsize=4, zorder=3)
            bars.lines[0].set_gid("optimum")
    students = _student_span(file)
    estimate, low, high = _law_curve(law, students)
    ax.plot(students, estimate, color="C0", linewidth=3.5, alpha=0.55, gid="law", label=f"law {file.law!r}")
    if np.isfinite(low).any():
        ax.fill_between(students, low, high, where=np.isfinite(low) & np.isfinite(high), color="C0",
                        alpha=0.18, gid="band", label=f"{round(100 * file.level)}% band")
    ax.plot(students, REFERENCE_RATIO * students, linestyle=(0, (4, 3)), color="0.25", linewidth=1.2, zorder=4,
            gid="reference",
            label=f"T* = {REFERENCE_RATIO}·S (reference)")
    if file.student_range:
        ax.axvspan(*file.student_range, color="0.9", zorder=0, gid="fitted_range", label="students fitted on")
    if any(not o.censored for o in file.optima):
        ax.scatter([], [], marker="o", color="C0", label="per-student optimum (interval)")
    for side, marker in (("at_least", "^"), ("at_most", "v")):
        if any(o.censored == side for o in file.optima):
            ax.scatter([], [], marker=marker, color="C3", label=f"censored: {side.replace('_', ' ')} this large")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _label_sizes(ax.xaxis, ax.yaxis)
    ax.set_xlabel(f"student size ({measure_word})")
    ax.set_ylabel(f"optimal teacher size ({measure_word})")
    ax.set_title("optimal teacher against student size")
    ax.grid(True, which="both", alpha=0.25)
    _legend_outside(ax)


def _law_curve(law: Law, students: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T*(S) with its interval along ``students``; NaN where the law gives no teacher (a gap in the line), and
    where a two-sided law's answer is a bound (a student past the teachers measured for its like: the bound is
    no point of the law, and the censored markers show it)."""
    rows = []
    for student in students:
        try:
            found = law.optimal_teacher(float(student))
        except InputError:  # e.g. a linear law with no positive teacher for tiny students
            rows.append((np.nan, np.nan, np.nan))
            continue
        if found.censored is not None and law.file.bound is None:
            rows.append((np.nan, np.nan, np.nan))
            continue
        rows.append((found.estimate, np.nan if found.low is None else found.low,
                     np.nan if found.high is None else found.high))
    return tuple(np.array(column, dtype=float) for column in zip(*rows))


def _student_span(file) -> np.ndarray:  # noqa: ANN001 (a LawFile)
    """Students to draw the law over: the fitted range (or the optima's), widened 2x each way."""
    known = list(file.student_range or []) + [o.student_params for o in file.optima]
    low, high = (min(known), max(known)) if known else (1e7, 1e10)
    return np.geomspace(low / 2.0, high * 2.0, 80)


def _size_colors(sizes: Sequence[float]) -> dict:
    """One colour per size on a log scale (viridis), shared by legend and points."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    if not sizes:
        return {}
    norm = LogNorm(min(sizes), max(sizes)) if max(sizes) > min(sizes) else (lambda _: 0.5)
    cmap = colormaps["viridis"]
    return {size: cmap(0.85 * float(norm(size))) for size in sizes}


# -- the raw run grid -------------------------------------------------------------

def runs_figure(runs: Sequence[RunRecord], metric: str | None = None, path: str | Path | None = None) -> Figure:
    """The student metric against teacher/student ratio, one line per student size, coloured by size.

    An MoE student is placed by its active size (the dense student of its compute) and drawn in
    its own line style, so dense and MoE students of one active size share a colour and an x.
    """
    if path is not None:
        figure_format(path)
    runs = list(runs)
    if not runs:
        raise InputError("no runs to plot")
    metric = metric or _common_metric(runs)
    usable = [r for r in runs if metric in r.metrics]
    if not usable:
        raise InputError(f"no run has metric {metric!r}; choose with --metric")
    figure = _new_figure(9, 6)
    ax = figure.add_subplot()
    size = lambda r: r.student_active_params or r.student_params  # noqa: E731 (a dense student's is all of it)
    nominal = nominal_sizes([size(r) for r in usable], tolerance=FIGURE_SIZE_TOLERANCE)
    students = sorted(set(nominal.values()))
    colors = _size_colors(students)
    made = lambda r: r.student_init if r.student_kind == "dense" else f"{r.student_init} MoE×{r.experts}"  # noqa: E731
    inits = sorted({made(r) for r in usable})
    moe_inits = {made(r) for r in usable if r.student_kind == "moe"}
    moe = bool(moe_inits)
    lines: dict[tuple[str, str, int], list[tuple[float, float]]] = defaultdict(list)
    for run in usable:
        key = (run.family, made(run), nominal[size(run)])
        lines[key].append((run.teacher_params / size(run), run.metrics[metric]))
    for (family, init, student), points in sorted(lines.items()):
        points.sort()
        linestyle, marker = _init_style(init, inits)
        # "active" only for MoE students: a dense student's size is its whole size.
        label = f"{family} S = {format_size(student)}{' active' if init in moe_inits else ''}" + (
            f", {init}" if len(inits) > 1 else "")
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, linestyle=linestyle,
                color=colors[student], gid="run", label=label)
    ax.axvline(REFERENCE_RATIO, linestyle="--", color="grey", gid="reference", label=f"T = {REFERENCE_RATIO}·S")
    ax.set_xscale("log")
    _label_ratios(ax.xaxis)
    ax.set_xlabel("teacher size / student size (total parameters" + ("; an MoE student's active ones)" if moe else ")"))
    direction = metric_direction(metric)
    ax.set_ylabel(f"student {metric}" + (f" ({direction} is better)" if direction else ""))
    ax.set_title(f"distillation runs: {len(usable)} runs, {len(students)} student sizes")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, title="student size")
    return _finish(figure, path)


def _common_metric(runs: Sequence[RunRecord]) -> str:
    """eval_loss when present, else the metric most runs have."""
    counts: dict[str, int] = defaultdict(int)
    for run in runs:
        for name in run.metrics:
            counts[name] += 1
    return "eval_loss" if "eval_loss" in counts else max(counts, key=counts.get)


# -- from files (what the CLI calls) ------------------------------------------------

def plot_law_file(law: str | Path, runs: Sequence[str | Path] | None = None,
                  path: str | Path | None = None, all_runs: bool = False) -> Figure:
    """``law_figure`` of a law file ('default': the shipped law) and optional run files."""
    from capgap.laws.files import resolve_law
    from capgap.runs.store import load_runs

    if path is not None:
        figure_format(path)  # refuse a bad --out before loading anything
    resolved, _ = resolve_law(str(law))
    return law_figure(resolved, load_runs(list(runs)) if runs else None, path, all_runs=all_runs)


def plot_run_files(runs: Sequence[str | Path], metric: str | None = None, path: str | Path | None = None) -> Figure:
    """``runs_figure`` of run files (.jsonl stores, .csv tables)."""
    from capgap.runs.store import load_runs

    if path is not None:
        figure_format(path)
    return runs_figure(load_runs(list(runs)), metric, path)

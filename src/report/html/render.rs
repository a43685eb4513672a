//! The page as one HTML document (pure: a [`Page`] in, text out). Everything is inline:
//! the style sheet, the SVG charts and the script (tooltips on hover and focus; errors
//! written into the page, so a test reading the DOM sees them).

use std::fmt::Write;

use super::{Bar, MAX_TASK_NODES, Outcome, Page, lanes, series};
use crate::report::document::{HostDoc, RunDocument, StatsDoc, is_live};
use crate::report::end::secs;
use crate::report::junit::escape;

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// Catches errors of the page's script (installed first, in the head).
const ERROR_CATCHER: &str = "window.addEventListener('error',function(e){var p=document.getElementById('errors');if(!p){p=document.createElement('pre');p.id='errors';(document.body||document.documentElement).appendChild(p);}p.textContent+=(e.message||'error')+'\\n';});";

/// Width of the charts (SVG user units), of their label column and of their plot area.
const WIDTH: f64 = 1160.0;
const LABEL: f64 = 150.0;
const PLOT: f64 = WIDTH - LABEL - 10.0;
/// Height the timeline's lanes share, and a lane's height bounds.
const TIMELINE_HEIGHT: f64 = 520.0;
const LANE_MAX: f64 = 16.0;
const LANE_MIN: f64 = 2.0;
/// Utilisation buckets, histogram bins.
const BUCKETS: usize = 200;
const BINS: usize = 30;
/// Cells (lanes × columns) of an aggregated timeline.
const DENSITY_CELLS: usize = 12_000;

/// The page as one self-contained HTML document.
pub fn render(page: &Page) -> String {
    let doc = &page.doc;
    let mut html = String::with_capacity(4096 + page.bars.len().min(MAX_TASK_NODES) * 300);
    let title = format!("dts run {} ({})", doc.run_id, doc.name);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n<script>{ERROR_CATCHER}</script>\n</head>\n<body>\n",
        escape(&title)
    );
    html.push_str(&header(page));
    html.push_str(&figures(&doc.stats));
    let layout = Layout::of(page);
    html.push_str(&timeline(page, &layout));
    html.push_str(&utilisation(page, &layout));
    html.push_str(&histogram(&page.runs));
    html.push_str(&hosts_table(&doc.hosts));
    html.push_str(&failures(page));
    let _ = write!(
        html,
        "<div id=\"tip\" role=\"tooltip\" hidden></div>\n<script>\n{SCRIPT}</script>\n</body>\n</html>\n"
    );
    html
}

fn header(page: &Page) -> String {
    let doc = &page.doc;
    let t = &doc.tasks;
    let mut counts = vec![
        format!("{} succeeded", t.succeeded),
        format!("{} failed", t.failed),
    ];
    for (n, what) in [
        (t.cancelled, "cancelled"),
        (t.not_run, "not run"),
        (t.running, "running"),
        (t.queued, "queued"),
        (t.lost, "lost"),
    ] {
        if n > 0 {
            counts.push(format!("{n} {what}"));
        }
    }
    let mut text = format!(
        "<header>\n<h1>dts run <code>{}</code> <span class=\"name\">{}</span></h1>\n\
         <p class=\"state s-{}\"><strong>{}</strong> · {} task{}: {} · {} · created {} · {} host{}</p>\n",
        escape(&doc.run_id),
        escape(&doc.name),
        escape(&doc.state),
        escape(&doc.state),
        t.total,
        plural(t.total),
        counts.join(", "),
        escape(&doc.algorithm),
        utc(doc.created),
        doc.hosts.len(),
        plural(doc.hosts.len()),
    );
    if is_live(&doc.state) {
        let _ = writeln!(
            text,
            "<p class=\"note\">The run is still going: this is how it stood at {}. \
             <code>dts report {} --html FILE</code> again shows it later.</p>",
            utc(page.generated),
            escape(&doc.run_id)
        );
    }
    text.push_str("</header>\n");
    text
}

fn figures(s: &StatsDoc) -> String {
    let completed = s.completed > 0;
    let mut items: Vec<(&str, String, &str)> = vec![(
        "makespan",
        secs(s.makespan_s),
        "first submission to last finish",
    )];
    if completed {
        items.extend([
            (
                "ATCT",
                secs(s.atct_s),
                "mean task completion time (finished − submitted)",
            ),
            ("wait mean", secs(s.wait_mean_s), "queued before launch"),
            (
                "wait p95",
                secs(s.wait_p95_s),
                "95th percentile of the wait",
            ),
            ("run mean", secs(s.run_mean_s), "launch to exit"),
            ("run p50", secs(s.run_p50_s), "median run time"),
            (
                "run p95",
                secs(s.run_p95_s),
                "95th percentile of the run time",
            ),
            ("run max", secs(s.run_max_s), "longest run"),
        ]);
    }
    items.extend([
        (
            "RU",
            format!("{:.2}", s.ru),
            "mean host utilisation (busy slot-time / capacity)",
        ),
        (
            "LBD",
            format!("{:.3}", s.lbd),
            "load-balance degree: mean |RU_h − RU|, 0 is perfect",
        ),
    ]);
    if completed {
        items.extend([
            (
                "LB ratio",
                format!("{:.2}", s.lb_ratio),
                "makespan / lower bound, 1 is perfect",
            ),
            (
                "throughput",
                format!("{:.1} tasks/s", s.throughput),
                "tasks finished per second",
            ),
        ]);
        if let Some(hit) = s.hit_rate {
            items.push((
                "hit rate",
                format!("{hit:.2}"),
                "tasks run on their key's first-choice host",
            ));
        }
    }
    items.extend([
        (
            "retries",
            s.retries.to_string(),
            "failed attempts run again",
        ),
        (
            "requeues",
            s.requeues.to_string(),
            "attempts moved after a host was lost",
        ),
    ]);
    let mut text =
        String::from("<section id=\"figures\">\n<h2>Figures</h2>\n<dl class=\"figures\">\n");
    for (name, value, help) in items {
        let _ = writeln!(
            text,
            "<div title=\"{}\"><dt>{name}</dt><dd>{}</dd></div>",
            escape(help),
            escape(&value)
        );
    }
    if !completed {
        text.push_str("<div><dt>completed</dt><dd>no task ran to its end</dd></div>\n");
    }
    text.push_str("</dl>\n</section>\n");
    text
}

/// Where each host's lanes are and where each bar goes.
struct Layout {
    /// Per host: its first lane and its lane count (at least its slots, at least 1).
    hosts: Vec<(usize, usize)>,
    /// Per bar: its lane over the whole timeline.
    lane: Vec<usize>,
    /// Per host: its bars, by position.
    bars_of: Vec<Vec<usize>>,
    lanes: usize,
    lane_height: f64,
    span: f64,
}

impl Layout {
    fn of(page: &Page) -> Layout {
        let mut lane = vec![0; page.bars.len()];
        let mut hosts = Vec::with_capacity(page.doc.hosts.len());
        let mut bars_of: Vec<Vec<usize>> = vec![Vec::new(); page.doc.hosts.len()];
        for (i, bar) in page.bars.iter().enumerate() {
            if let Some(mine) = bars_of.get_mut(bar.host) {
                mine.push(i);
            }
        }
        let mut next = 0;
        for (mine, host) in bars_of.iter().zip(&page.doc.hosts) {
            let intervals: Vec<(f64, f64)> = mine
                .iter()
                .map(|&i| (page.bars[i].start, page.bars[i].end))
                .collect();
            let (assigned, used) = lanes::assign(&intervals);
            for (&i, l) in mine.iter().zip(assigned) {
                lane[i] = next + l;
            }
            let count = used.max(host.slots as usize).max(1);
            hosts.push((next, count));
            next += count;
        }
        let lanes = next.max(1);
        Layout {
            hosts,
            lane,
            bars_of,
            lanes,
            lane_height: (TIMELINE_HEIGHT / lanes as f64).clamp(LANE_MIN, LANE_MAX),
            span: if page.span > 0.0 { page.span } else { 1.0 },
        }
    }

    fn x(&self, t: f64) -> f64 {
        LABEL + (t / self.span).clamp(0.0, 1.0) * PLOT
    }
}

const AXIS: f64 = 22.0;

fn timeline(page: &Page, layout: &Layout) -> String {
    let aggregated = page.bars.len() > MAX_TASK_NODES;
    let height = AXIS + layout.lanes as f64 * layout.lane_height + 4.0;
    let mut text = String::from("<section id=\"timeline\">\n<h2>Timeline</h2>\n");
    text.push_str(&legend(&page.bars));
    if aggregated {
        let _ = writeln!(
            text,
            "<p class=\"note\" id=\"aggregated\">{} attempts: above {MAX_TASK_NODES} the timeline shows how busy each slot lane was \
             (darker is busier), coloured by the worst outcome in each stretch, instead of one bar per attempt.</p>",
            page.bars.len()
        );
    } else {
        text.push_str(
            "<p class=\"hint\">One lane per host slot, one bar per attempt: hover or focus (Tab) a bar for its details.</p>\n",
        );
    }
    let _ = writeln!(
        text,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"group\" aria-label=\"timeline of {} attempts on {} hosts\">",
        page.bars.len(),
        page.doc.hosts.len()
    );
    for (h, (host, &(first, count))) in page.doc.hosts.iter().zip(&layout.hosts).enumerate() {
        let y = AXIS + first as f64 * layout.lane_height;
        let band = count as f64 * layout.lane_height;
        let _ = writeln!(
            text,
            "<rect class=\"band{}\" x=\"0\" y=\"{y:.1}\" width=\"{WIDTH}\" height=\"{band:.1}\"/>",
            if h % 2 == 1 { " odd" } else { "" }
        );
        if band >= 7.0 {
            let _ = writeln!(
                text,
                "<text class=\"host\" x=\"{:.0}\" y=\"{:.1}\" font-size=\"{:.0}\">{}</text>",
                LABEL - 6.0,
                y + band / 2.0 + 4.0,
                band.clamp(7.0, 12.0),
                escape(&host.name)
            );
        }
        if !host.connected && host.attempts == 0 && band >= 7.0 {
            let _ = writeln!(
                text,
                "<text class=\"sub start\" x=\"{:.0}\" y=\"{:.1}\">never connected</text>",
                LABEL + 6.0,
                y + band / 2.0 + 4.0
            );
        }
    }
    text.push_str(&axis(layout, height));
    if aggregated {
        text.push_str(&density(page, layout));
    } else {
        for (bar, &lane) in page.bars.iter().zip(&layout.lane) {
            text.push_str(&task_bar(bar, &page.doc, layout, lane));
        }
    }
    text.push_str("</svg>\n</section>\n");
    text
}

fn legend(bars: &[Bar]) -> String {
    let mut text = String::from("<ul class=\"legend\">");
    for outcome in Outcome::ALL {
        let n = bars.iter().filter(|b| b.outcome == outcome).count();
        if n > 0 || matches!(outcome, Outcome::Succeeded | Outcome::Failed) {
            let _ = write!(
                text,
                "<li><span class=\"swatch o-{}\"></span>{} {n}</li>",
                outcome.class(),
                outcome.label()
            );
        }
    }
    let speculative = bars.iter().filter(|b| b.speculative).count();
    if speculative > 0 {
        let _ = write!(
            text,
            "<li><span class=\"swatch spec o-ok\"></span>speculative copy {speculative}</li>"
        );
    }
    text.push_str("</ul>\n");
    text
}

/// Ticks along the top and faint lines down the lanes.
fn axis(layout: &Layout, height: f64) -> String {
    let mut text = String::new();
    let step = nice_step(layout.span / 8.0);
    let mut t = 0.0;
    while t <= layout.span + step * 1e-9 {
        let x = layout.x(t);
        let _ = writeln!(
            text,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{:.0}\" x2=\"{x:.1}\" y2=\"{height:.0}\"/><text class=\"tick\" x=\"{x:.1}\" y=\"14\">{}</text>",
            AXIS - 4.0,
            tick(t, step)
        );
        t += step;
    }
    text
}

/// A round tick step of at least `raw` seconds: 1, 2 or 5 times a power of ten below ten
/// seconds, then steps a clock reads well (15 s, 5 min, 1 h, ...), then whole days.
pub(super) fn nice_step(raw: f64) -> f64 {
    const CLOCK: [f64; 14] = [
        10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0,
        43200.0,
    ];
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    if raw < 10.0 {
        let magnitude = 10f64.powf(raw.log10().floor());
        return [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|&s| s >= raw * 0.999)
            .unwrap_or(10.0 * magnitude);
    }
    CLOCK
        .into_iter()
        .find(|&s| s >= raw)
        .unwrap_or_else(|| 86400.0 * (raw / 86400.0).ceil())
}

fn tick(t: f64, step: f64) -> String {
    if step >= 60.0 {
        let m = (t / 60.0).round() as u64;
        if m >= 60 {
            format!("{}h{:02}", m / 60, m % 60)
        } else {
            format!("{m}m")
        }
    } else if step >= 1.0 {
        format!("{t:.0}s")
    } else if step >= 0.1 {
        format!("{t:.1}s")
    } else {
        format!("{t:.2}s")
    }
}

fn task_bar(bar: &Bar, doc: &RunDocument, layout: &Layout, lane: usize) -> String {
    let x = layout.x(bar.start);
    let width = (layout.x(bar.end) - x).max(0.6);
    let y = AXIS + lane as f64 * layout.lane_height + 1.0;
    let h = (layout.lane_height - 2.0).max(1.0);
    format!(
        "<rect class=\"task o-{}{}\" tabindex=\"0\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{h:.1}\"><title>{}</title></rect>\n",
        bar.outcome.class(),
        if bar.speculative { " spec" } else { "" },
        escape(&describe(bar, doc))
    )
}

/// What a bar's tooltip says.
fn describe(bar: &Bar, doc: &RunDocument) -> String {
    let host = doc.hosts.get(bar.host).map_or("?", |h| h.name.as_str());
    let mut first = format!("task {}", bar.index);
    if let Some(stage) = &bar.stage {
        let _ = write!(first, " (stage {stage})");
    }
    let _ = write!(first, " · item {}", shorten(&bar.item));
    if let Some(key) = &bar.key {
        let _ = write!(first, " · key {}", shorten(key));
    }
    let mut outcome = bar.outcome.label().to_string();
    if let Some(status) = &bar.status {
        let _ = write!(outcome, " · {status}");
    }
    format!(
        "{first}\n{host} · attempt {}{}\n{outcome}\nwait {} · run {}\n{} → {}",
        bar.attempt,
        if bar.speculative {
            " (speculative copy)"
        } else {
            ""
        },
        secs(bar.wait),
        secs(bar.end - bar.start),
        secs(bar.start),
        secs(bar.end)
    )
}

fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() > MAX {
        text.chars().take(MAX).collect::<String>() + "…"
    } else {
        text.to_string()
    }
}

/// One aggregated lane cell: busy seconds, attempts that started in it, worst outcome.
#[derive(Clone, Copy, Default)]
struct Cell {
    busy: f64,
    started: usize,
    worst: Option<Outcome>,
}

/// The aggregated timeline: per lane, stretches of equal busyness and worst outcome.
fn density(page: &Page, layout: &Layout) -> String {
    let columns = (DENSITY_CELLS / layout.lanes).clamp(8, 300);
    let width = layout.span / columns as f64;
    let mut cells = vec![Cell::default(); layout.lanes * columns];
    for (bar, &lane) in page.bars.iter().zip(&layout.lane) {
        let first = ((bar.start / width) as usize).min(columns - 1);
        let last = ((bar.end / width) as usize).min(columns - 1);
        cells[lane * columns + first].started += 1;
        for c in first..=last {
            let cell = &mut cells[lane * columns + c];
            let (lo, hi) = (c as f64 * width, (c + 1) as f64 * width);
            cell.busy += (bar.end.min(hi) - bar.start.max(lo)).max(0.0);
            if cell
                .worst
                .is_none_or(|w| w.severity() < bar.outcome.severity())
            {
                cell.worst = Some(bar.outcome);
            }
        }
    }
    let level = |c: &Cell| ((c.busy / width * 4.0).ceil() as u8).clamp(1, 4);
    let mut text = String::new();
    for (host, &(first_lane, count)) in page.doc.hosts.iter().zip(&layout.hosts) {
        for lane in first_lane..first_lane + count {
            let row = &cells[lane * columns..(lane + 1) * columns];
            let mut c = 0;
            while c < columns {
                let Some(worst) = row[c].worst else {
                    c += 1;
                    continue;
                };
                let shade = level(&row[c]);
                let mut end = c + 1;
                while end < columns && row[end].worst == Some(worst) && level(&row[end]) == shade {
                    end += 1;
                }
                let busy: f64 = row[c..end].iter().map(|cell| cell.busy).sum();
                let started: usize = row[c..end].iter().map(|cell| cell.started).sum();
                let (t0, t1) = (c as f64 * width, end as f64 * width);
                let x = layout.x(t0);
                let y = AXIS + lane as f64 * layout.lane_height;
                let _ = writeln!(
                    text,
                    "<rect class=\"density o-{}\" tabindex=\"0\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill-opacity=\"{:.2}\"><title>{} slot {} · {} → {} · busy {:.0}% · {started} attempt{} started · worst: {}</title></rect>",
                    worst.class(),
                    layout.x(t1) - x,
                    layout.lane_height.max(1.0),
                    f64::from(shade) / 4.0,
                    escape(&host.name),
                    lane - first_lane + 1,
                    secs(t0),
                    secs(t1),
                    busy / (t1 - t0) * 100.0,
                    plural(started),
                    worst.label()
                );
                c = end;
            }
        }
    }
    text
}

const UTIL_OVERALL: f64 = 110.0;
const UTIL_ROW: f64 = 26.0;

fn utilisation(page: &Page, layout: &Layout) -> String {
    let doc = &page.doc;
    let busy_of = |host: usize| -> Vec<(f64, f64)> {
        layout.bars_of[host]
            .iter()
            .map(|&i| (page.bars[i].start, page.bars[i].end))
            .collect()
    };
    let connected: Vec<(f64, f64)> = (0..doc.hosts.len())
        .filter(|&h| doc.hosts[h].slots > 0)
        .flat_map(busy_of)
        .collect();
    let total_slots: u32 = doc.hosts.iter().map(|h| h.slots).sum();
    let rows = doc.hosts.len() as f64;
    let height = UTIL_OVERALL + 14.0 + rows * UTIL_ROW + 4.0;
    let mut text = String::from(
        "<section id=\"utilisation\">\n<h2>Utilisation over time</h2>\n\
         <p class=\"hint\">Busy slots / slots, in 200 steps of the run; overall, then per host.</p>\n",
    );
    let _ = writeln!(
        text,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" aria-label=\"utilisation over time, overall and per host\">"
    );
    let overall = series::utilisation(&connected, f64::from(total_slots), layout.span, BUCKETS);
    let _ = writeln!(
        text,
        "<text class=\"host\" x=\"{:.0}\" y=\"20\">all hosts</text><text class=\"sub\" x=\"{:.0}\" y=\"36\">RU {:.2}</text>",
        LABEL - 6.0,
        LABEL - 6.0,
        doc.stats.ru
    );
    text.push_str(&step_area(
        &overall,
        4.0,
        UTIL_OVERALL - 8.0,
        "util all",
        "all hosts",
    ));
    for (h, host) in doc.hosts.iter().enumerate() {
        let top = UTIL_OVERALL + 14.0 + h as f64 * UTIL_ROW;
        let _ = writeln!(
            text,
            "<text class=\"host\" x=\"{:.0}\" y=\"{:.1}\">{} <tspan class=\"sub\">{}</tspan></text>",
            LABEL - 6.0,
            top + UTIL_ROW / 2.0 + 4.0,
            escape(&host.name),
            if host.slots > 0 {
                format!("RU {:.2}", host.ru)
            } else {
                "never connected".into()
            }
        );
        if host.slots > 0 {
            let series =
                series::utilisation(&busy_of(h), f64::from(host.slots), layout.span, BUCKETS);
            text.push_str(&step_area(
                &series,
                top + 2.0,
                UTIL_ROW - 4.0,
                "util",
                &host.name,
            ));
        }
    }
    text.push_str("</svg>\n</section>\n");
    text
}

/// A filled step series of fractions in `[0, 1]`, `height` tall from `top`.
fn step_area(values: &[f64], top: f64, height: f64, class: &str, name: &str) -> String {
    let bottom = top + height;
    let step = PLOT / values.len().max(1) as f64;
    let mut d = format!("M{LABEL:.1} {bottom:.1}");
    // One vertical and one horizontal segment per run of equal (rounded) heights.
    let y_of = |v: f64| format!("{:.1}", bottom - v.clamp(0.0, 1.0) * height);
    let mut i = 0;
    while i < values.len() {
        let y = y_of(values[i]);
        let mut end = i + 1;
        while end < values.len() && y_of(values[end]) == y {
            end += 1;
        }
        let _ = write!(d, "V{y}H{:.1}", LABEL + end as f64 * step);
        i = end;
    }
    let _ = write!(d, "V{bottom:.1}Z");
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    format!(
        "<rect class=\"frame\" x=\"{LABEL:.0}\" y=\"{top:.1}\" width=\"{PLOT:.0}\" height=\"{height:.1}\"/><path class=\"{class}\" d=\"{d}\"><title>{}: mean {:.0}% of slots busy</title></path>\n",
        escape(name),
        mean * 100.0
    )
}

const HIST_HEIGHT: f64 = 150.0;

fn histogram(runs: &[f64]) -> String {
    let mut text = String::from("<section id=\"histogram\">\n<h2>Run times</h2>\n");
    if runs.is_empty() {
        text.push_str("<p class=\"hint\">No task ran to its end yet.</p>\n</section>\n");
        return text;
    }
    let (counts, width) = series::histogram(runs, BINS);
    let most = counts.iter().copied().max().unwrap_or(1).max(1);
    let _ = writeln!(
        text,
        "<p class=\"hint\">{} task{} that ran to their end, in {BINS} bins of {}.</p>\n\
         <svg class=\"chart\" viewBox=\"0 0 {WIDTH} {:.0}\" role=\"img\" aria-label=\"histogram of run times\">",
        runs.len(),
        plural(runs.len()),
        secs(width),
        HIST_HEIGHT + 24.0
    );
    let bin_width = PLOT / BINS as f64;
    let _ = writeln!(
        text,
        "<text class=\"sub\" x=\"{:.0}\" y=\"14\">{most} task{}</text><rect class=\"frame\" x=\"{LABEL:.0}\" y=\"4\" width=\"{PLOT:.0}\" height=\"{HIST_HEIGHT:.0}\"/>",
        LABEL - 6.0,
        plural(most)
    );
    for (i, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let h = n as f64 / most as f64 * (HIST_HEIGHT - 4.0);
        let _ = writeln!(
            text,
            "<rect class=\"bin\" tabindex=\"0\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{} to {}: {n} task{}</title></rect>",
            LABEL + i as f64 * bin_width + 1.0,
            4.0 + HIST_HEIGHT - h,
            bin_width - 2.0,
            secs(i as f64 * width),
            secs((i + 1) as f64 * width),
            plural(n)
        );
    }
    for (frac, anchor) in [(0.0, "start"), (0.5, "middle"), (1.0, "end")] {
        let _ = writeln!(
            text,
            "<text class=\"tick\" text-anchor=\"{anchor}\" x=\"{:.1}\" y=\"{:.0}\">{}</text>",
            LABEL + frac * PLOT,
            HIST_HEIGHT + 20.0,
            secs(frac * width * BINS as f64)
        );
    }
    text.push_str("</svg>\n</section>\n");
    text
}

fn hosts_table(hosts: &[HostDoc]) -> String {
    let gpus = crate::report::document::any_gpus(hosts);
    let mut text = format!(
        "<section id=\"hosts\">\n<h2>Hosts</h2>\n<table>\n<thead><tr><th>host</th><th>slots</th>{}<th>tasks</th><th>failed</th>\
         <th>attempts</th><th>failed attempts</th><th>busy</th><th>RU</th><th>mean run</th><th>p95 run</th></tr></thead>\n<tbody>\n",
        if gpus { "<th>GPUs</th>" } else { "" }
    );
    for h in hosts {
        let run = |s: f64| if h.completed > 0 { secs(s) } else { "-".into() };
        let gpu_cell = if gpus {
            format!("<td class=\"gpus\">{}</td>", h.gpus)
        } else {
            String::new()
        };
        let _ = writeln!(
            text,
            "<tr{}><th scope=\"row\">{}</th><td>{}</td>{gpu_cell}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
            if h.connected { "" } else { " class=\"gone\"" },
            escape(&h.name),
            h.slots,
            h.tasks,
            h.failed,
            h.attempts,
            h.failed_attempts,
            secs(h.busy_s),
            h.ru,
            run(h.mean_run_s),
            run(h.p95_run_s)
        );
    }
    text.push_str("</tbody>\n</table>\n</section>\n");
    text
}

fn failures(page: &Page) -> String {
    let doc = &page.doc;
    if doc.failures.is_empty() && page.left_out.is_empty() {
        return String::new();
    }
    let mut text = String::from("<section id=\"failures\">\n<h2>Failures</h2>\n");
    if !doc.failures.is_empty() {
        text.push_str(
            "<table>\n<thead><tr><th>failed tasks</th><th>count</th><th>cause</th></tr></thead>\n<tbody>\n",
        );
        for f in &doc.failures {
            let _ = writeln!(
                text,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                escape(&f.tasks),
                f.count,
                escape(&f.cause)
            );
        }
        text.push_str("</tbody>\n</table>\n");
    }
    if !page.left_out.is_empty() {
        text.push_str("<ul class=\"left-out\">\n");
        for line in &page.left_out {
            let _ = writeln!(text, "<li>{}</li>", escape(line));
        }
        text.push_str("</ul>\n");
    }
    text.push_str("</section>\n");
    text
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Epoch seconds as `2026-11-25T07:22:58Z`.
fn utc(epoch: f64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.max(0.0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

//! The report's plots, drawn from the report alone: SVG files a browser or GitHub shows as is.
//! Sizes and times span orders of magnitude (a branch in milliseconds, a dump of 1.5 GB in
//! minutes), so size and time axes are logarithmic.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::{Method, Report};

const W: u32 = 900;
const H: u32 = 540;
const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// One line: a label, a colour and (x, y) points, x ascending.
struct Series {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// Each method keeps its colour in every plot.
fn color(m: Method) -> RGBColor {
    COLORS[Method::ALL.iter().position(|x| *x == m).unwrap_or(0)]
}

/// Writes every plot into `dir`; the files written.
pub fn all(r: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    let mib = |b: u64| (b as f64 / (1u64 << 20) as f64).max(0.001);
    let per_method = |f: &dyn Fn(&super::report::MethodResult) -> f64| -> Vec<Series> {
        Method::ALL
            .into_iter()
            .map(|m| Series {
                label: m.label().to_string(),
                color: color(m),
                points: r
                    .sizes
                    .iter()
                    .filter_map(|z| z.method(m).map(|x| (mib(z.database_bytes), f(x))))
                    .collect(),
            })
            .collect()
    };
    let ms = |us: u64| (us as f64 / 1000.0).max(0.001);

    let mut time = per_method(&|x| ms(x.ready_us.p50));
    time.insert(
        1,
        Series {
            label: "lakelet branch: create call only".into(),
            color: COLORS[4],
            points: r
                .sizes
                .iter()
                .filter_map(|z| {
                    z.method(Method::LakeletBranch)
                        .map(|x| (mib(z.database_bytes), ms(x.made_us.p50)))
                })
                .collect(),
        },
    );
    let storage = per_method(&|x| mib(x.storage_added_bytes.p50));

    let mut ratio = Vec::new();
    for (i, (workload, path)) in [
        ("tpcb", "socket"),
        ("tpcb", "proxy"),
        ("select-only", "socket"),
        ("select-only", "proxy"),
    ]
    .into_iter()
    .enumerate()
    {
        ratio.push(Series {
            label: format!("{workload}, branch via {path}"),
            color: COLORS[i],
            points: r
                .sizes
                .iter()
                .filter_map(|z| {
                    let t = z.pgbench.iter().find(|t| t.workload == workload)?;
                    let v = if path == "socket" {
                        t.ratio_socket
                    } else {
                        t.ratio_proxy
                    };
                    v.is_finite().then_some((mib(z.database_bytes), v))
                })
                .collect(),
        });
    }

    let out = |name: &str| dir.join(name);
    let files = vec![
        out("time-vs-size.svg"),
        out("storage-vs-size.svg"),
        out("throughput-ratio.svg"),
    ];
    // The x labels are the measured sizes themselves, named by scale too.
    let xs: Vec<(f64, String)> = r
        .sizes
        .iter()
        .map(|z| (mib(z.database_bytes), z.source.replace("pgbench ", "")))
        .collect();
    log_y(
        &files[0],
        "A private copy of the database: time until its first query is answered (p50)",
        "milliseconds (log)",
        &xs,
        &time,
    )?;
    log_y(
        &files[1],
        "Storage each private copy adds (p50)",
        "MiB (log)",
        &xs,
        &storage,
    )?;
    let top = ratio
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.2f64, f64::max)
        * 1.1;
    draw(
        &files[2],
        "pgbench throughput on a branch relative to the same Postgres on local disk",
        "branch tps / native tps",
        &xs,
        0.0..top,
        &ratio,
        Some(1.0),
    )?;
    Ok(files)
}

/// The range of `v`, widened by `f` on each side (log axes); a unit range around 1 if empty.
fn span(v: impl Iterator<Item = f64>, f: f64) -> (f64, f64) {
    let (a, b) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if a.is_finite() && b.is_finite() {
        (a / f, b * f)
    } else {
        (0.1, 10.0)
    }
}

/// 1-2-5 ticks in [lo, hi]: a log axis spanning less than a decade still gets labels.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if t >= lo && t <= hi {
                out.push(t);
            }
        }
        decade *= 10.0;
    }
    out
}

fn log_y(path: &Path, title: &str, y_desc: &str, xs: &[(f64, String)], s: &[Series]) -> Result<()> {
    let (lo, hi) = span(s.iter().flat_map(|s| s.points.iter().map(|p| p.1)), 1.5);
    let y = (lo..hi).log_scale().with_key_points(ticks(lo, hi));
    draw(path, title, y_desc, xs, y, s, None)
}

fn draw<Y>(
    path: &Path,
    title: &str,
    y_desc: &str,
    xs: &[(f64, String)],
    y: Y,
    series: &[Series],
    reference: Option<f64>,
) -> Result<()>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let e = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let (x0, x1) = span(xs.iter().map(|x| x.0), 1.6);
    let x = (x0..x1)
        .log_scale()
        .with_key_points(xs.iter().map(|x| x.0).collect());
    let label = |v: &f64| {
        let name = xs
            .iter()
            .min_by(|a, b| (a.0 - v).abs().total_cmp(&(b.0 - v).abs()))
            .map_or("", |x| x.1.as_str());
        format!("{} ({name})", trim(*v))
    };
    let root: DrawingArea<SVGBackend, Shift> = SVGBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut ch = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(|x| e(&x))?;
    ch.configure_mesh()
        .x_desc("parent database size, MiB (log)")
        .y_desc(y_desc)
        .x_label_formatter(&label)
        .y_label_formatter(&|v| trim(*v))
        .draw()
        .map_err(|x| e(&x))?;
    if let Some(v) = reference {
        ch.draw_series(LineSeries::new([(x0, v), (x1, v)], BLACK.mix(0.5)))
            .map_err(|x| e(&x))?
            .label("native Postgres on local disk = 1")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.5)));
    }
    for s in series {
        let color = s.color;
        let style = color.stroke_width(2);
        ch.draw_series(LineSeries::new(s.points.iter().copied(), style))
            .map_err(|x| e(&x))?
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        ch.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|x| e(&x))?;
    }
    ch.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK.mix(0.3))
        .background_style(WHITE.mix(0.9))
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// Axis labels without float noise: 0.5, 2, 1000.
fn trim(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

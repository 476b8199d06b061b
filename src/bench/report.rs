//! What `lakelet bench` found: every raw figure (the JSON file), the percentiles drawn from
//! them, and the Markdown a person reads. The JSON is the record; the Markdown and the plots
//! are derived from it and from nothing else, so they cannot disagree with it.

use serde::{Deserialize, Serialize};

/// How a team gets a private copy of a database, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// `POST branches` on the daemon, then a query through the proxy (the compute starts on
    /// demand).
    LakeletBranch,
    /// `CREATE DATABASE copy TEMPLATE parent` on the same server.
    Template,
    /// `createdb copy; pg_dump -Fc parent | pg_restore -d copy`.
    DumpRestore,
    /// Stop the server, `cp -a` its data directory, start a second server on the copy: what a
    /// Docker volume copy does.
    DatadirCopy,
}

impl Method {
    pub const ALL: [Method; 4] = [
        Method::LakeletBranch,
        Method::Template,
        Method::DumpRestore,
        Method::DatadirCopy,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Method::LakeletBranch => "lakelet branch",
            Method::Template => "CREATE DATABASE … TEMPLATE",
            Method::DumpRestore => "pg_dump | pg_restore",
            Method::DatadirCopy => "data directory copy (Docker volume)",
        }
    }

    /// What the "made" phase of one run covers, for the report's footnotes.
    pub fn made_means(self) -> &'static str {
        match self {
            Method::LakeletBranch => "the create call answered (the daemon CHECKPOINTs the running parent, then writes a branch pointer)",
            Method::Template => "CREATE DATABASE … TEMPLATE returned (Postgres 15's default WAL_LOG strategy: every page read and WAL-logged)",
            Method::DumpRestore => "CREATE DATABASE plus pg_dump -Fc piped into pg_restore (rows, then indexes and constraints rebuilt)",
            Method::DatadirCopy => "the parent's server stopped (fast shutdown) and `cp -a` of its whole data directory finished",
        }
    }
}

/// One private copy made and queried.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// From the first request until the copy exists (see `Method::made_means`).
    pub made_us: u64,
    /// From the first request until the first query on the copy was answered, on a new
    /// connection: the figure a developer or a CI job waits for.
    pub ready_us: u64,
    /// The daemon's own time for the create (lakelet only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_us: Option<u64>,
    /// Bytes the copy added once it answered: the branch's own bytes in the store, the new
    /// database's `pg_database_size`, or the copied directory's allocated blocks.
    pub storage_added_bytes: u64,
}

/// Nearest-rank percentiles of a set of samples.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Stats {
    pub p50: u64,
    pub p95: u64,
    pub min: u64,
    pub max: u64,
}

impl Stats {
    pub fn of(samples: &[u64]) -> Stats {
        if samples.is_empty() {
            return Stats::default();
        }
        let mut s = samples.to_vec();
        s.sort_unstable();
        Stats {
            p50: pct(&s, 0.50),
            p95: pct(&s, 0.95),
            min: s[0],
            max: s[s.len() - 1],
        }
    }
}

/// Nearest-rank percentile of sorted samples (p95 of 10 samples is the largest).
pub fn pct(sorted: &[u64], p: f64) -> u64 {
    debug_assert!(sorted.windows(2).all(|w| w[0] <= w[1]), "samples sorted");
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One method at one size: every run, and the percentiles the report prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodResult {
    pub method: Method,
    pub label: String,
    pub runs: Vec<Run>,
    /// Percentiles of `made_us`, `ready_us` and `storage_added_bytes` over the runs.
    pub made_us: Stats,
    pub ready_us: Stats,
    pub storage_added_bytes: Stats,
}

impl MethodResult {
    pub fn new(method: Method, runs: Vec<Run>) -> MethodResult {
        let col = |f: fn(&Run) -> u64| Stats::of(&runs.iter().map(f).collect::<Vec<_>>());
        MethodResult {
            method,
            label: method.label().to_string(),
            made_us: col(|r| r.made_us),
            ready_us: col(|r| r.ready_us),
            storage_added_bytes: col(|r| r.storage_added_bytes),
            runs,
        }
    }
}

/// One pgbench run's summary lines.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgbenchRun {
    pub tps: f64,
    pub latency_avg_ms: Option<f64>,
    pub transactions: Option<u64>,
    /// CPU, disk writes and view requests per transaction (steady-state runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<super::cost::RunCost>,
}

/// TPC-B or select-only at one size: native Postgres on local disk vs a branch, reached over
/// the compute's own socket (the storage path alone) and through the proxy (what clients use).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// "tpcb" or "select-only".
    pub workload: String,
    pub native: PgbenchRun,
    pub branch_socket: PgbenchRun,
    pub branch_proxy: PgbenchRun,
    /// branch_socket.tps / native.tps.
    pub ratio_socket: f64,
    /// branch_proxy.tps / native.tps.
    pub ratio_proxy: f64,
    /// Every interleaved round's tps: native, branch (socket), branch (proxy). The runs above
    /// are each side's median round.
    #[serde(default)]
    pub rounds: Vec<[f64; 3]>,
}

impl Throughput {
    pub fn new(
        workload: &str,
        native: PgbenchRun,
        branch_socket: PgbenchRun,
        branch_proxy: PgbenchRun,
    ) -> Throughput {
        let r = |b: &PgbenchRun| {
            if native.tps > 0.0 {
                b.tps / native.tps
            } else {
                f64::NAN
            }
        };
        Throughput {
            workload: workload.to_string(),
            ratio_socket: r(&branch_socket),
            ratio_proxy: r(&branch_proxy),
            native,
            branch_socket,
            branch_proxy,
            rounds: vec![],
        }
    }
}

/// Everything measured at one parent size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SizeResult {
    /// pgbench scale of the parent (100,000 pgbench_accounts rows per unit); 0 for an import.
    pub scale: u32,
    /// "pgbench scale N" or "imported DB".
    pub source: String,
    /// The query every copy answered exactly as the parent does.
    pub probe: String,
    /// The parent database's `pg_database_size` on native Postgres once loaded.
    pub database_bytes: u64,
    /// Loading the parent: `pgbench -i` (through the proxy) or `lakelet import` on lakelet;
    /// `pgbench -i` or `pg_dump | pg_restore` natively.
    pub load_s: LoadTimes,
    pub methods: Vec<MethodResult>,
    pub pgbench: Vec<Throughput>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadTimes {
    pub lakelet: f64,
    pub native: f64,
}

impl SizeResult {
    pub fn method(&self, m: Method) -> Option<&MethodResult> {
        self.methods.iter().find(|r| r.method == m)
    }
}

/// Where and how the run happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_bytes: u64,
    pub kernel: String,
    pub postgres: String,
    /// The directory both sides lived in, and its filesystem type.
    pub work_dir: String,
    pub filesystem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub sizes: Vec<u32>,
    /// Imported parents, as URLs without their passwords.
    #[serde(default)]
    pub imports: Vec<String>,
    pub runs: usize,
    pub alt_runs: usize,
    pub duration_s: u64,
    /// Interleaved rounds of each steady-state workload.
    #[serde(default)]
    pub pgbench_rounds: usize,
    pub pgbench_clients: u32,
    pub pgbench_threads: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub lakelet_version: String,
    pub started_at: String,
    pub finished_at: String,
    pub command: String,
    pub machine: Machine,
    pub settings: Settings,
    pub sizes: Vec<SizeResult>,
}

/// Per-transaction costs of each side's median round: where a throughput ratio comes from.
fn cost_section(r: &Report) -> String {
    let mut o = format!(
        "### Cost per transaction\n\n\
         Each side's median round of {} interleaved rounds. CPU: the Postgres processes \
         (postmaster and every child) and the lakelet daemon. Disk: bytes written to block \
         devices (`write_bytes`), by Postgres (native: WAL and data; branch: its WAL, its WAL \
         archive and, as the kernel counts them, pages dirtied through the view) and by the \
         daemon (the page store). View: FUSE requests per transaction, and the bytes its writes \
         carried. *Disk B*: Postgres's bytes less those the view carried (the kernel charges \
         Postgres for dirtying them, but they reach a disk only as the store's writes), plus the \
         daemon's; *× native* compares it with native's. For a branch it is an upper bound: the \
         kernel charges for pages dirtied through FUSE more than the view then receives (about \
         3× under TPC-B on Linux 6.18). The disk's own counters, the closing CHECKPOINT \
         included, are in `scripts/bench-write-path.sh`.\n\n\
         | scale | workload | side | Postgres CPU µs | daemon CPU µs | Postgres disk B | daemon disk B | view B | disk B | × native | view writes | view fsyncs | view setattrs |\n\
         | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        r.settings.pgbench_rounds.max(1)
    );
    let opt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0}"));
    let opt2 = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    for z in r.sizes.iter().filter(|z| z.scale > 0) {
        for t in &z.pgbench {
            for (side, run) in [
                ("native", &t.native),
                ("branch (socket)", &t.branch_socket),
                ("branch (proxy)", &t.branch_proxy),
            ] {
                let Some(c) = &run.cost else { continue };
                let v = c.view.as_ref();
                let native = t.native.cost.as_ref().map(|n| n.disk_bytes());
                let ratio = native
                    .filter(|&n| n >= 1.0)
                    .map_or("–".to_string(), |n| format!("{:.2}×", c.disk_bytes() / n));
                o += &format!(
                    "| {} | {} | {side} | {:.0} | {} | {:.0} | {} | {} | {:.0} | {ratio} | {} | {} | {} |\n",
                    z.scale,
                    t.workload,
                    c.postgres_cpu_us,
                    opt(c.daemon_cpu_us),
                    c.postgres_disk_bytes,
                    opt(c.daemon_disk_bytes),
                    opt(v.map(|v| v.bytes_written)),
                    c.disk_bytes(),
                    opt2(v.map(|v| v.writes)),
                    opt2(v.map(|v| v.syncs)),
                    opt2(v.map(|v| v.setattrs)),
                );
            }
        }
    }
    o += "\n";
    o
}

pub fn human_us(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{:.1} min", ms / 60_000.0)
    }
}

pub fn human_bytes(b: u64) -> String {
    const K: f64 = 1024.0;
    let f = b as f64;
    if f < K * K {
        format!("{:.0} KiB", f / K)
    } else if f < K * K * K {
        format!("{:.1} MiB", f / (K * K))
    } else {
        format!("{:.2} GiB", f / (K * K * K))
    }
}

/// Text in a Markdown table cell: a `|` would end the cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn times(a: u64, b: u64) -> String {
    if b == 0 {
        "–".into()
    } else {
        let x = a as f64 / b as f64;
        if x >= 10.0 {
            format!("{x:.0}×")
        } else {
            format!("{x:.1}×")
        }
    }
}

/// The Markdown report. The plots sit next to it in the output directory.
pub fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let s = &r.settings;
    let mut o = format!(
        "# lakelet bench\n\n\
         {} → {}, lakelet {}, {}, {} CPUs, {} memory, kernel {}, work directory {} ({}).\n\n\
         Command: `{}`\n\n",
        r.started_at,
        r.finished_at,
        r.lakelet_version,
        m.postgres,
        m.cpus,
        human_bytes(m.memory_bytes),
        m.kernel,
        m.work_dir,
        m.filesystem,
        r.command,
    );
    o += "## A private copy of the database: time until it answers its first query\n\n\
          Median (p50) of each method at each parent size; *ready* is from the first request \
          until the copy answered its first query on a new connection.\n\n";
    o += "| method |";
    for z in &r.sizes {
        o += &format!(" {} ({}) |", z.source, human_bytes(z.database_bytes));
    }
    o += "\n| --- |";
    o += &" ---: |".repeat(r.sizes.len());
    o += "\n";
    for meth in Method::ALL {
        o += &format!("| {} |", cell(meth.label()));
        for z in &r.sizes {
            let cell = z
                .method(meth)
                .map(|x| human_us(x.ready_us.p50))
                .unwrap_or_else(|| "–".into());
            o += &format!(" {cell} |");
        }
        o += "\n";
    }
    o += "\n![time until ready vs size](time-vs-size.svg)\n\n";

    for z in &r.sizes {
        let base = z.method(Method::LakeletBranch).map(|x| x.ready_us.p50);
        let load = if z.scale > 0 {
            format!(
                "Parent loaded with `pgbench -i -s {}`: {:.1} s on a lakelet branch (through the \
                 proxy), {:.1} s on native Postgres.",
                z.scale, z.load_s.lakelet, z.load_s.native
            )
        } else {
            format!(
                "Parent copied from its server: `lakelet import` {:.1} s, `pg_dump | \
                 pg_restore --create` into native Postgres {:.1} s.",
                z.load_s.lakelet, z.load_s.native
            )
        };
        o += &format!(
            "### {} ({} database)\n\n{load} Every copy answered `{}` as the parent does.\n\n\
             | method | runs | made p50 | made p95 | ready p50 | ready p95 | storage added (p50) | ready, × lakelet's |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            z.source,
            human_bytes(z.database_bytes),
            z.probe,
        );
        for x in &z.methods {
            o += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                cell(&x.label),
                x.runs.len(),
                human_us(x.made_us.p50),
                human_us(x.made_us.p95),
                human_us(x.ready_us.p50),
                human_us(x.ready_us.p95),
                human_bytes(x.storage_added_bytes.p50),
                base.map(|b| times(x.ready_us.p50, b))
                    .unwrap_or_else(|| "–".into()),
            );
        }
        o += "\n";
    }

    o += &format!(
        "## Steady state: pgbench on a branch vs the same Postgres on local disk\n\n\
         `pgbench -c {} -j {} -T {}` after a CHECKPOINT, at each size; native Postgres and the \
         branch's compute run the same binaries with the same settings. *socket* reaches the \
         branch's compute directly (the storage path alone); *proxy* goes through lakelet's \
         proxy over TCP with SCRAM and TLS (libpq's default `sslmode=prefer`), as every \
         client does.\n\n\
         | scale | workload | native tps | branch tps (socket) | ratio | branch tps (proxy) | ratio |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n",
        s.pgbench_clients, s.pgbench_threads, s.duration_s
    );
    for z in r.sizes.iter().filter(|z| z.scale > 0) {
        for t in &z.pgbench {
            o += &format!(
                "| {} | {} | {:.0} | {:.0} | {:.2}× | {:.0} | {:.2}× |\n",
                z.scale,
                t.workload,
                t.native.tps,
                t.branch_socket.tps,
                t.ratio_socket,
                t.branch_proxy.tps,
                t.ratio_proxy
            );
        }
    }
    o += "\n![throughput of a branch relative to local disk](throughput-ratio.svg)\n\n";
    o += &cost_section(r);

    o += "## What each method measures\n\n";
    for meth in Method::ALL {
        o += &format!("- **{}** — made: {}.\n", meth.label(), meth.made_means());
    }
    o += &format!(
        "- **ready**: made, then a new connection answers the probe as the parent does ({}, \
         or the count of user relations for an import).\n\
         - **storage added**: lakelet, the bytes the new branch's timeline owns in the page \
         store once it answered (what deleting it frees); TEMPLATE and dump/restore, the new \
         database's `pg_database_size`; the directory copy, the copy's allocated blocks.\n\
         - {} lakelet runs and {} runs of each alternative per size, interleaved. Every raw \
         figure is in `report.json`.\n",
        "`SELECT count(*) FROM pgbench_branches` = the scale", s.runs, s.alt_runs
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<u64> = (1..=10).collect();
        assert_eq!(pct(&s, 0.5), 5);
        assert_eq!(pct(&s, 0.95), 10);
        assert_eq!(pct(&[7], 0.95), 7);
        let st = Stats::of(&[30, 10, 20]);
        assert_eq!((st.p50, st.p95, st.min, st.max), (20, 30, 10, 30));
        assert_eq!(Stats::of(&[]).p50, 0);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_us(1_500), "1.50 ms");
        assert_eq!(human_us(420_000), "420 ms");
        assert_eq!(human_us(12_300_000), "12.3 s");
        assert_eq!(human_us(150_000_000), "2.5 min");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(times(10_000, 100), "100×");
        assert_eq!(times(150, 100), "1.5×");
    }
}

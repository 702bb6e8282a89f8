//! `fathom top`: a live terminal view of the node's top flows, pods and drops over the agent
//! API, in the spirit of iftop and tcptop.

mod model;
mod view;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fathom_agent::api::ObserveRequest;
use fathom_agent::client::{AgentClient, StreamItem, DEFAULT_SOCKET};
use fathom_model::{Record, Timestamp};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};

use crate::timearg::parse_time_arg;
use model::{SortKey, TopModel};
use view::{Tab, ViewState};

#[derive(clap::Args)]
pub struct TopArgs {
    #[arg(long, env = "FATHOM_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Include records from this far back (e.g. 5m) or an RFC 3339 time.
    #[arg(long, value_parser = parse_time_arg, default_value = "5m")]
    since: Timestamp,
    /// Screen refresh interval.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    interval: Duration,
}

enum Feed {
    Record(Box<Record>),
    Lost(u64),
    Failed(String),
}

pub fn run(args: TopArgs) -> anyhow::Result<i32> {
    // Fail before touching the terminal when the agent is not there.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let client = AgentClient::new(&args.socket);
    let status = rt.block_on(client.status())?;

    let (tx, rx) = mpsc::channel::<Feed>();
    let req = ObserveRequest {
        since: Some(args.since),
        follow: true,
        ..Default::default()
    };
    rt.spawn(async move {
        let feed = tx.clone();
        let r = client
            .observe(&req, move |item| {
                let f = match item {
                    StreamItem::Record(r) => Feed::Record(r),
                    StreamItem::Notice(v) => Feed::Lost(v["records"].as_u64().unwrap_or(0)),
                };
                feed.send(f).is_ok()
            })
            .await;
        let _ = tx.send(Feed::Failed(match r {
            Ok(()) => "the agent closed the stream".into(),
            Err(e) => e.to_string(),
        }));
    });

    let mut terminal = ratatui::init();
    let result = event_loop(&mut terminal, &rx, &args, &status.node);
    ratatui::restore();
    result.map(|()| 0)
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    rx: &mpsc::Receiver<Feed>,
    args: &TopArgs,
    node: &str,
) -> anyhow::Result<()> {
    let mut model = TopModel::default();
    let mut st = ViewState {
        tab: Tab::Flows,
        sort: SortKey::Bytes,
        paused: false,
        header: String::new(),
    };
    let mut problem: Option<String> = None;
    let mut next_draw = Instant::now();
    loop {
        for f in rx.try_iter() {
            match f {
                Feed::Record(r) if !st.paused => model.apply(&r),
                Feed::Record(_) => {}
                Feed::Lost(n) => model.lost += n,
                Feed::Failed(e) => problem = Some(e),
            }
        }
        if Instant::now() >= next_draw {
            st.header = format!(
                "fathom top — node {node} — {} records, {} lost{}",
                model.records,
                model.lost,
                problem
                    .as_deref()
                    .map(|p| format!(" — {p}"))
                    .unwrap_or_default()
            );
            terminal.draw(|f| view::draw(f, &model, &st))?;
            next_draw = Instant::now() + args.interval;
        }
        if event::poll(Duration::from_millis(100))? {
            if let Event::Key(k) = event::read()? {
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('1') => st.tab = Tab::Flows,
                    KeyCode::Char('2') => st.tab = Tab::Pods,
                    KeyCode::Char('3') => st.tab = Tab::Drops,
                    KeyCode::Tab => {
                        let i = Tab::ALL.iter().position(|t| *t == st.tab).unwrap_or(0);
                        st.tab = Tab::ALL[(i + 1) % Tab::ALL.len()];
                    }
                    KeyCode::Char('s') => st.sort = st.sort.next(),
                    KeyCode::Char('p') => st.paused = !st.paused,
                    _ => {}
                }
                next_draw = Instant::now();
            }
        }
    }
}

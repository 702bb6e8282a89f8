//! Drawing `fathom top` with ratatui: a header line, tabs, and one table per view.

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Row, Table, Tabs};
use ratatui::Frame;

use super::model::{SortKey, TopModel};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Flows,
    Pods,
    Drops,
}

impl Tab {
    pub const ALL: [Tab; 3] = [Tab::Flows, Tab::Pods, Tab::Drops];
    fn title(self) -> &'static str {
        match self {
            Tab::Flows => "1 Flows",
            Tab::Pods => "2 Pods",
            Tab::Drops => "3 Drops",
        }
    }
}

pub struct ViewState {
    pub tab: Tab,
    pub sort: SortKey,
    pub paused: bool,
    pub header: String,
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn draw(f: &mut Frame, m: &TopModel, st: &ViewState) {
    let [head, tabs, body, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Line::from(st.header.clone()).bold(), head);
    let selected = Tab::ALL.iter().position(|t| *t == st.tab).unwrap_or(0);
    f.render_widget(
        Tabs::new(Tab::ALL.map(Tab::title))
            .select(selected)
            .highlight_style(Style::new().reversed()),
        tabs,
    );
    let title = format!(
        " sort: {}{} ",
        st.sort.name(),
        if st.paused { "  [paused]" } else { "" }
    );
    let block = Block::new().borders(Borders::TOP).title(title);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    match st.tab {
        Tab::Flows => {
            let rows = m.flows(st.sort).into_iter().map(|r| {
                Row::new(vec![
                    Cell::from(r.source),
                    Cell::from(r.destination),
                    Cell::from(r.protocol),
                    Cell::from(r.packets.to_string()),
                    Cell::from(human_bytes(r.bytes)),
                    Cell::from(r.process),
                    Cell::from(if r.ended { "ended" } else { "live" }),
                ])
            });
            let t = Table::new(
                rows,
                [
                    Constraint::Percentage(24),
                    Constraint::Percentage(24),
                    Constraint::Length(7),
                    Constraint::Length(9),
                    Constraint::Length(11),
                    Constraint::Percentage(16),
                    Constraint::Length(6),
                ],
            )
            .header(
                Row::new([
                    "SOURCE",
                    "DESTINATION",
                    "PROTO",
                    "PACKETS",
                    "BYTES",
                    "PROCESS",
                    "STATE",
                ])
                .style(bold),
            )
            .block(block);
            f.render_widget(t, body);
        }
        Tab::Pods => {
            let rows = m.pods(st.sort).into_iter().map(|r| {
                Row::new(vec![
                    Cell::from(r.pod),
                    Cell::from(r.flows.to_string()),
                    Cell::from(human_bytes(r.bytes_sent)),
                    Cell::from(human_bytes(r.bytes_received)),
                    Cell::from(r.packets.to_string()),
                    Cell::from(r.drops.to_string()),
                ])
            });
            let t = Table::new(
                rows,
                [
                    Constraint::Percentage(34),
                    Constraint::Length(7),
                    Constraint::Length(12),
                    Constraint::Length(12),
                    Constraint::Length(10),
                    Constraint::Length(8),
                ],
            )
            .header(Row::new(["POD", "FLOWS", "SENT", "RECEIVED", "PACKETS", "DROPS"]).style(bold))
            .block(block);
            f.render_widget(t, body);
        }
        Tab::Drops => {
            let rows = m.drops().into_iter().map(|(pod, reason, n)| {
                Row::new(vec![
                    Cell::from(pod),
                    Cell::from(reason),
                    Cell::from(n.to_string()),
                ])
            });
            let t = Table::new(
                rows,
                [
                    Constraint::Percentage(40),
                    Constraint::Percentage(40),
                    Constraint::Length(10),
                ],
            )
            .header(Row::new(["POD", "REASON", "DROPS"]).style(bold))
            .block(block);
            f.render_widget(t, body);
        }
    }
    f.render_widget(
        Line::from("1/2/3 or Tab: view   s: sort   p: pause   q: quit").dim(),
        help,
    );
}

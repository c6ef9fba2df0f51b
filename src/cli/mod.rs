//! Commands that talk to a running tgfleet over its REST API (the same API the frontend uses),
//! for onboarding scripts: `tgfleet accounts import` and `tgfleet accounts onboard`; and the
//! operator's commands on the data itself: `tgfleet keys …`, `backup` and `restore`.

pub mod backup;
pub mod client;
pub mod import;
pub mod keys;
pub mod onboard;
pub mod session_files;
pub mod session_json;

/// Left-aligned text table for summaries: one header row, then rows.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            out.push_str(&format!("{cell:<w$}  "));
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    out.push_str(&line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

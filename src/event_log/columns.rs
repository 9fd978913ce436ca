//! pixl-server's `log_columns`: the names of the columns an event-log line can have.

/// A column of pixl-logger's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Column {
    /// Epoch seconds with milliseconds (`1508477033.311`).
    HiresEpoch,
    /// Whole epoch seconds.
    Epoch,
    /// Local date and time.
    Date,
    Hostname,
    /// The process id.
    Pid,
    Component,
    Category,
    Code,
    Msg,
    Data,
    /// A name pixl-logger fills from its own arguments: always empty here.
    Other(String),
}

impl Column {
    /// The column a `log_columns` name stands for.
    pub(crate) fn named(name: &str) -> Column {
        match name {
            "hires_epoch" => Column::HiresEpoch,
            "epoch" => Column::Epoch,
            "date" => Column::Date,
            "hostname" => Column::Hostname,
            "pid" => Column::Pid,
            "component" => Column::Component,
            "category" => Column::Category,
            "code" => Column::Code,
            "msg" => Column::Msg,
            "data" => Column::Data,
            other => Column::Other(other.to_string()),
        }
    }

    /// pixl-logger's default columns (what poolgate writes without `log_columns`).
    pub(crate) fn defaults() -> Vec<Column> {
        use Column::*;
        vec![
            HiresEpoch, Date, Hostname, Component, Category, Code, Msg, Data,
        ]
    }
}

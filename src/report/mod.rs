//! What the user reads about a run: the end-of-run summary (and, for `dts hosts`, the probe
//! table). Rendering is pure: it turns records into text.

pub mod compare;
pub mod document;
pub mod end;
pub mod hosts_table;
pub mod html;
pub mod junit;
pub mod params;
pub mod plan;
pub mod progress;
pub mod status;

//! File staging (issue 16 item 1), pure part: which paths may be staged, and the framing
//! that carries files to and from hosts. Both are free of I/O so they can be tested alone;
//! wiring into submit and the dispatcher is not built yet.

pub mod frame;
pub mod path;

//! The zero-copy TCP engine (RFC 9293): a sans-I/O connection state machine whose send
//! queue holds references to pool frames and file blocks, and whose receive queue hands
//! the application slices of the frames that arrived.

mod bbr;
mod cc;
mod config;
mod conn;
mod dsack;
mod fin_wait2;
mod hystart;
mod info;
mod input;
mod minmax;
mod output;
mod pacing;
pub mod pmtu;
mod prr;
mod rack;
mod rate;
mod recovery;
mod recv_queue;
mod rtt;
mod rtx_queue;
mod scoreboard;
mod send_queue;
pub mod syn_cookie;
mod time_wait;
mod timer;
mod undo;
pub(crate) mod validate;

pub use bbr::{Bbr, BbrInfo, BbrMode};
pub use cc::{AckInfo, AckSample, CcAlgorithm, CongestionControl, Cubic, NewReno};
pub use config::{KeepAlive, TcpConfig};
pub use conn::{CaState, Conn, ConnError, FourTuple, OutSegment, RecoveryInfo, State};
pub use hystart::SsEvent;
pub use info::ConnInfo;
pub use input::Reply;
pub use prr::Prr;
pub use rate::RateSample;
pub use recv_queue::{Insert, RecvQueue};
pub use rtt::RttEstimator;
pub use scoreboard::Scoreboard;
pub use send_queue::SendQueue;
pub use time_wait::{TimeWait, TwVerdict};
pub use timer::{TimerKind, Timers};

//! One module per CNI command. Each validates what it still needs before touching
//! anything, then acts.

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod status;
pub mod version;

//! etcd's alarms, replicated through Raft so every member refuses the same writes.

use crate::error::{ConsensusError, Result};
use crate::format::{self, kind};
use crate::node::Node;
use crate::state_machine::ALARMS;
use crate::types::{Alarm, AlarmChange, Command};

impl Node {
    /// The raised alarms, as applied on this member.
    pub fn alarms(&self) -> Result<Vec<Alarm>> {
        match self.store().app_meta(ALARMS).map_err(ConsensusError::Rejected)? {
            Some(bytes) => {
                format::decode::<kind::Alarms>(&bytes).map_err(|e| ConsensusError::Storage(e.to_string()))
            }
            None => Ok(Vec::new()),
        }
    }

    /// Raises or clears an alarm on every member.
    pub async fn change_alarm(&self, change: AlarmChange) -> Result<()> {
        self.write(Command::Alarm(change)).await.map(|_| ())
    }
}

//! The owner written into layer tars: `--uid`/`--gid`, defaulting to the build user of the
//! CNB platform environment, shared by every subcommand that writes tars.

use clap::Args;
use layerize::Owner;
use layerize::error::{Error, Result};

/// `--uid` and `--gid`; the default value stands for the environment's build user.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct OwnerArgs {
    /// uid of layer entries [default: $CNB_USER_ID, else 0].
    #[arg(long)]
    pub uid: Option<u64>,
    /// gid of layer entries [default: $CNB_GROUP_ID, else 0].
    #[arg(long)]
    pub gid: Option<u64>,
}

impl OwnerArgs {
    /// The flags, with the environment's build user for those not given.
    pub fn owner(self) -> Result<Owner> {
        let env = Owner::from_env().map_err(|reason| Error::invalid("<environment>", reason))?;
        Ok(Owner {
            uid: self.uid.unwrap_or(env.uid),
            gid: self.gid.unwrap_or(env.gid),
        })
    }
}

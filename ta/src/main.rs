//! SUIT trusted application: optee-utee entry points.
//!
//! Placeholder glue: one trivial command (PING) so that the build, signing and loading pipeline
//! can be tested end to end. The real TA replaces this with glue around the platform-independent
//! TA core.

#![no_std]
#![no_main]

extern crate alloc;

use optee_utee::prelude::*;
use optee_utee::{trace_println, Error, ErrorKind, Result};

/// Command 0: PING. value[0].a in → value[0].a = a + 1, value[0].b = TA ABI marker out.
const CMD_PING: u32 = 0;
const PING_MAGIC: u32 = 0x5355_4954; // "SUIT"

#[ta_create]
fn create() -> Result<()> {
    Ok(())
}

#[ta_open_session]
fn open_session(_params: &mut ParametersAny) -> Result<()> {
    Ok(())
}

#[ta_close_session]
fn close_session() {}

#[ta_destroy]
fn destroy() {}

#[ta_invoke_command]
fn invoke_command(cmd_id: u32, params: &mut ParametersAny) -> Result<()> {
    match cmd_id {
        CMD_PING => {
            let value = params.0.as_value_inout()?;
            let next = value.get_a().wrapping_add(1);
            value.set_a(next);
            value.set_b(PING_MAGIC);
            trace_println!("[suit-ta] ping {}", next);
            Ok(())
        }
        _ => Err(Error::new(ErrorKind::BadParameters)),
    }
}

include!(concat!(env!("OUT_DIR"), "/user_ta_header.rs"));

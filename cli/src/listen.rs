//! `birpc listen`: stay connected, print what the other side sends, answer its calls.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::args::ListenArgs;
use crate::call::parse_params;
use crate::connect::hang_up;
use crate::failure::Failure;
use crate::interrupt::interrupted;
use crate::output;
use crate::responder::{Responder, to_stdout};

/// The answer to the first call, as a line: `{"result": …}` or `{"error": …}`.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum Answered<'a> {
    Result(&'a RawValue),
    Error(&'a birpc::ErrorObject),
}

/// Connects, makes the first call if one is given, and prints and answers until the connection ends or
/// Ctrl-C.
pub(crate) async fn listen(args: ListenArgs) -> Result<(), Failure> {
    let params = parse_params(&args.params)?;
    let responder = Responder::from_options(args.responder.answers.as_deref(), args.responder.script.as_deref())?;
    let peer = args.endpoint.open(responder.into_router(to_stdout(""))).await?;
    let session = async {
        let mut outcome = Ok(());
        if let Some(method) = &args.method {
            let answered = peer.call::<Box<RawValue>>(method, &params).await;
            match answered {
                Ok(result) => output::print_line(output::raw(&Answered::Result(&result)).get())?,
                Err(error) => match Failure::from(error) {
                    Failure::ErrorObject(object) => {
                        output::print_line(output::raw(&Answered::Error(&object)).get())?;
                        outcome = Err(Failure::ErrorObject(object));
                    }
                    other => return Err(other),
                },
            }
        }
        let reason = peer.closed().await;
        eprintln!("birpc: the connection ended: {reason}");
        outcome
    };
    tokio::select! {
        outcome = session => outcome,
        () = interrupted() => {
            hang_up(&peer).await;
            Ok(())
        }
    }
}

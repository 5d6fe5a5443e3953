//! How `listen` and `shell` answer the calls the other side makes to this one: from a JSON file, from a
//! script run per call, or with -32601 Method not found. Every call and notification that arrives is
//! printed first, as one JSON line `{"id": …, "method": …, "params": …}` (no `id` for a notification, no
//! `params` when it had none).

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use birpc::layer::IncomingCall;
use birpc::{ErrorObject, Params, Router};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::failure::Failure;
use crate::output;

/// Where the lines telling what arrived go.
pub(crate) type Print = Arc<dyn Fn(&str) + Send + Sync>;

/// Prints each line on stdout after `prefix`. When nobody reads stdout any more, answering goes on all
/// the same.
pub(crate) fn to_stdout(prefix: &'static str) -> Print {
    Arc::new(move |line: &str| {
        let _ = output::print_line(&format!("{prefix}{line}"));
    })
}

/// One entry of an answers file: `{"result": …}` or `{"error": {"code": …, "message": …, "data": …}}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Answer {
    Result(Box<RawValue>),
    Error(ErrorObject),
}

/// What answers the other side's calls.
#[derive(Debug)]
pub(crate) enum Responder {
    /// -32601 Method not found to every call.
    Nothing,
    /// The answers of a JSON file, by method name; -32601 for the names it lacks.
    Answers(HashMap<String, Answer>),
    /// A command line run (by the shell) once per call and notification; see [`run_script`].
    Script(String),
}

impl Responder {
    /// The responder the options ask for.
    ///
    /// # Errors
    /// [`Failure::Usage`] when the answers file cannot be read or is not a map of answers.
    pub(crate) fn from_options(answers: Option<&Path>, script: Option<&str>) -> Result<Self, Failure> {
        if let Some(script) = script {
            return Ok(Responder::Script(script.to_owned()));
        }
        let Some(path) = answers else {
            return Ok(Responder::Nothing);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("cannot read the answers file {}: {e}", path.display())))?;
        let answers = serde_json::from_str(&text).map_err(|e| {
            Failure::Usage(format!(
                "the answers file {} is not a JSON object from method names to {{\"result\": …}} or \
                 {{\"error\": {{\"code\": …, \"message\": …}}}}: {e}",
                path.display()
            ))
        })?;
        Ok(Responder::Answers(answers))
    }

    /// A router that hands `print` a line for everything that arrives, and answers calls.
    pub(crate) fn into_router(self, print: Print) -> Router {
        let responder = Arc::new(self);
        Router::new().fallback(move |call: IncomingCall| {
            let responder = responder.clone();
            print(&arrival(&call));
            async move { responder.answer(&call).await }
        })
    }

    /// The answer to `call`.
    async fn answer(&self, call: &IncomingCall) -> Result<Box<RawValue>, ErrorObject> {
        match self {
            Responder::Nothing => Err(ErrorObject::method_not_found()),
            Responder::Answers(answers) => match answers.get(call.method()) {
                Some(Answer::Result(result)) => Ok(result.clone()),
                Some(Answer::Error(error)) => Err(error.clone()),
                None => Err(ErrorObject::method_not_found()),
            },
            Responder::Script(script) => run_script(script, call, call.params()).await,
        }
    }
}

/// What is printed for a call or notification that arrived.
#[derive(Serialize)]
struct Arrival<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RawValue>,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a RawValue>,
}

/// `call` with its params as one JSON line.
fn arrival(call: &IncomingCall) -> String {
    let id = call.id().and_then(|id| std::str::from_utf8(id.as_bytes()).ok());
    let params = call
        .params()
        .as_bytes()
        .and_then(|bytes| std::str::from_utf8(bytes).ok());
    let id: Option<&RawValue> = id.and_then(|text| serde_json::from_str(text).ok());
    let params: Option<&RawValue> = params.and_then(|text| serde_json::from_str(text).ok());
    let arrival = Arrival {
        id,
        method: call.method(),
        params,
    };
    output::raw(&arrival).get().to_owned()
}

/// Runs `script` for one call or notification: `sh -c SCRIPT` (`cmd /C` on Windows), with
///
/// - the params' JSON on stdin (nothing when the call had none);
/// - `BIRPC_METHOD` set to the method name and, for a call, `BIRPC_ID` to its id's JSON (unset for a
///   notification, whose outcome is dropped);
/// - stderr passed through to this command's stderr.
///
/// Exit status 0: stdout is the result's JSON (empty stdout: `null`). Any other status: stdout is the
/// error object's JSON (`{"code": …, "message": …}`), or, when it is not one, the error is -32000 with
/// the exit status as its data. Output that is not JSON answers -32603, as does output longer than
/// [`MAX_SCRIPT_OUTPUT`] (the script is then killed). The params are written while the output is read.
async fn run_script(script: &str, call: &IncomingCall, params: &Params) -> Result<Box<RawValue>, ErrorObject> {
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        ErrorObject::internal_error().with_detail(format_args!("the script {what}: {error}"))
    };
    let mut command = if cfg!(windows) {
        let mut command = tokio::process::Command::new("cmd");
        command.arg("/C").arg(script);
        command
    } else {
        let mut command = tokio::process::Command::new("sh");
        command.arg("-c").arg(script);
        command
    };
    command
        .env("BIRPC_METHOD", call.method())
        .env_remove("BIRPC_ID")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(id) = call.id() {
        command.env("BIRPC_ID", String::from_utf8_lossy(id.as_bytes()).as_ref());
    }
    let mut child = command.spawn().map_err(|e| failed("could not start", &e))?;
    let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
    // The params are written while the output is read: a script that writes as it reads (`cat`) would
    // otherwise wait on a full stdout pipe while this side waits on a full stdin pipe.
    let give = async {
        let Some(mut stdin) = stdin else { return Ok(()) };
        match stdin.write_all(params.as_bytes().unwrap_or_default()).await {
            // A script that does not read its params closes stdin early; that is no failure.
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error),
            _ => Ok(()),
        }
    };
    let take = async {
        let output = match stdout {
            Some(stdout) => read_at_most(stdout, MAX_SCRIPT_OUTPUT).await,
            None => Ok(Some(Vec::new())),
        };
        if !matches!(output, Ok(Some(_))) {
            // Past the limit (or unreadable): the script's answer is given up, and the script with it.
            let _ = child.start_kill();
        }
        output
    };
    let (given, taken) = tokio::join!(give, take);
    let output = taken.map_err(|e| failed("could not be read", &e))?;
    given.map_err(|e| failed("could not be given its params", &e))?;
    let Some(output) = output else {
        let _ = child.wait().await;
        return Err(failed(
            "printed too much",
            &format_args!("more than {MAX_SCRIPT_OUTPUT} bytes"),
        ));
    };
    let status = child.wait().await.map_err(|e| failed("failed", &e))?;
    let stdout = String::from_utf8_lossy(&output);
    let stdout = stdout.trim();
    if status.success() {
        if stdout.is_empty() {
            return Ok(RawValue::NULL.to_owned());
        }
        return RawValue::from_string(stdout.to_owned()).map_err(|e| failed("printed a result that is not JSON", &e));
    }
    match serde_json::from_str::<ErrorObject>(stdout) {
        Ok(error) => Err(error),
        Err(_) => Err(ErrorObject::new(-32000, "the script failed").with_detail(status)),
    }
}

/// The most a script may print as its answer: 4 MiB, the largest message a peer receives by default. A
/// script printing more is killed and the call answered -32603, so that one without end (`yes`) cannot take
/// all memory.
const MAX_SCRIPT_OUTPUT: usize = 4 * 1024 * 1024;

/// All of `reader` up to its end, or `None` once it gives more than `limit` bytes (at most `limit + 1` are
/// held).
async fn read_at_most(reader: impl tokio::io::AsyncRead + Unpin, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut output = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut output).await?;
    Ok((output.len() <= limit).then_some(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answers_file_holds_results_and_errors() {
        let answers: HashMap<String, Answer> = serde_json::from_str(
            r#"{"greet": {"result": "hi"}, "fail": {"error": {"code": 7, "message": "no", "data": [1]}}}"#,
        )
        .unwrap();
        assert!(matches!(&answers["greet"], Answer::Result(r) if r.get() == r#""hi""#));
        assert!(matches!(&answers["fail"], Answer::Error(e) if e.code() == 7 && e.message() == "no"));
        assert!(serde_json::from_str::<HashMap<String, Answer>>(r#"{"greet": "hi"}"#).is_err());
        assert!(serde_json::from_str::<HashMap<String, Answer>>(r#"{"greet": {"result": 1, "error": {}}}"#).is_err());
    }
}

//! `birpc discover`: the endpoint's methods, from its OpenRPC document (`rpc.discover`).

use birpc::Router;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::args::DiscoverArgs;
use crate::connect::hang_up;
use crate::failure::Failure;
use crate::output::{self, Layout};

/// OpenRPC's service discovery method.
const DISCOVER: &str = "rpc.discover";

/// Fetches the document and prints it, as a table or (`--json`) as it is.
pub(crate) async fn discover(args: DiscoverArgs) -> Result<(), Failure> {
    let layout = Layout::choose(args.layout.pretty, args.layout.compact);
    let peer = args.endpoint.open(Router::new()).await?;
    let answer = peer.call::<Box<RawValue>>(DISCOVER, ()).await;
    hang_up(&peer).await;
    let document = match answer {
        Ok(document) => document,
        Err(error) => {
            let failure = Failure::from(error);
            if let Failure::ErrorObject(object) = &failure {
                output::print(layout, &output::raw(object))?;
            }
            return Err(failure);
        }
    };
    if args.json {
        return Ok(output::print(layout, &document)?);
    }
    let parsed: Value = serde_json::from_str(document.get())
        .map_err(|e| Failure::Connection(format!("the answer to {DISCOVER} is not JSON: {e}")))?;
    Ok(output::print_line(table(&parsed).trim_end())?)
}

/// The document as a table: a title line, then one row per method (name, params, summary). Params that
/// may be left out end with `?`; stream methods and methods the server calls are marked in the summary.
fn table(document: &Value) -> String {
    let mut rows = vec![["METHOD".to_owned(), "PARAMS".to_owned(), "SUMMARY".to_owned()]];
    let methods = document["methods"].as_array().map(Vec::as_slice).unwrap_or_default();
    for method in methods {
        let name = method["name"].as_str().unwrap_or("?").to_owned();
        let params = method["params"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|param| {
                let name = param["name"].as_str().unwrap_or("?");
                let optional = param["required"].as_bool() == Some(false);
                if optional { format!("{name}?") } else { name.to_owned() }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let summary = method["summary"]
            .as_str()
            .or_else(|| method["description"].as_str().and_then(|d| d.lines().next()))
            .unwrap_or("")
            .trim();
        let mut marks = String::new();
        if method.get("x-birpc-stream").is_some() {
            marks.push_str("[stream] ");
        }
        if method["x-birpc-direction"].as_str() == Some("server-to-client") {
            marks.push_str("[server calls] ");
        }
        rows.push([name, params, format!("{marks}{summary}")]);
    }
    let width = |column: usize| rows.iter().map(|row| row[column].chars().count()).max().unwrap_or(0);
    let (first, second) = (width(0), width(1));
    let mut text = String::new();
    let title = document["info"]["title"].as_str().unwrap_or("(untitled)");
    let version = document["info"]["version"].as_str().unwrap_or("");
    text.push_str(format!("{title} {version}").trim_end());
    text.push_str(&format!(" ({} methods)\n\n", methods.len()));
    for [name, params, summary] in &rows {
        let line = format!("{name:<first$}  {params:<second$}  {summary}");
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_row_per_method_with_optional_params_and_marks() {
        let document = json!({
            "info": {"title": "demo", "version": "1.0"},
            "methods": [
                {"name": "add", "params": [{"name": "a", "required": true}, {"name": "b", "required": false}],
                 "summary": "The sum."},
                {"name": "ticks", "params": [], "description": "Numbers.\nMore.", "x-birpc-stream": {}},
                {"name": "pick", "x-birpc-direction": "server-to-client"}
            ]
        });
        assert_eq!(
            table(&document),
            "demo 1.0 (3 methods)\n\n\
             METHOD  PARAMS  SUMMARY\n\
             add     a, b?   The sum.\n\
             ticks           [stream] Numbers.\n\
             pick            [server calls]\n"
        );
    }

    #[test]
    fn a_document_without_methods_is_an_empty_table() {
        assert_eq!(table(&json!({})), "(untitled) (0 methods)\n\nMETHOD  PARAMS  SUMMARY\n");
    }
}

//! `wxcc audio analyze FILE…`: the audio facts of local WAV files, without a tenant or a lake, so
//! a recording someone doubts can be checked against what the sync would store for it.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::exit;
use crate::audio::facts::{self, AudioFacts};
use crate::lake::audio_facts::status;
use crate::sync::facts_status;

#[derive(Debug, Args)]
pub struct AudioArgs {
    #[command(subcommand)]
    pub command: AudioCommand,
}

#[derive(Debug, Subcommand)]
pub enum AudioCommand {
    /// Print the audio facts of each WAV file as one JSON line (the audio_facts definitions);
    /// exit 1 when any file could not be analysed.
    Analyze(AnalyzeArgs),
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// WAV files to analyse.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// One file's line: its status (as in `audio_facts.status`) and the facts, or why not.
#[derive(Serialize)]
struct Line<'a> {
    file: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(flatten)]
    facts: Option<AudioFacts>,
}

pub async fn run(args: AudioArgs) -> Result<u8> {
    let AudioCommand::Analyze(args) = args.command;
    let files = args.files;
    let results = tokio::task::spawn_blocking(move || {
        use rayon::prelude::*;
        let results: Vec<_> = files
            .par_iter()
            .map(|path| {
                std::fs::File::open(path)
                    .map_err(facts::FactsError::Io)
                    .and_then(|f| facts::analyze(std::io::BufReader::new(f)))
            })
            .collect();
        (files, results)
    })
    .await?;
    let (files, results) = results;
    let mut code = exit::OK;
    for (path, result) in files.iter().zip(results) {
        let file = path.to_string_lossy();
        let line = match result {
            Ok(facts) => Line {
                file: &file,
                status: status::OK,
                error: None,
                facts: Some(facts),
            },
            Err(e) => {
                code = exit::FAILURE;
                Line {
                    file: &file,
                    status: facts_status(&e),
                    error: Some(e.to_string()),
                    facts: None,
                }
            }
        };
        println!("{}", serde_json::to_string(&line)?);
    }
    Ok(code)
}

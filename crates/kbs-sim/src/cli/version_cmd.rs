//! `kubeadm version [-o short|yaml|json]` (cmd/kubeadm/app/cmd/version.go).

use super::{Context, Failure};

const GO_VERSION: &str = "go1.25.5";
const BUILD_DATE: &str = "2026-11-01T00:00:00Z";

pub fn run(output: &str, ctx: &mut Context) -> Result<(), Failure> {
    let v = ctx.version;
    let git = v.git_version();
    match output {
        "" => {
            let line = format!(
                "kubeadm version: &version.Info{{Major:\"{}\", Minor:\"{}\", EmulationMajor:\"\", EmulationMinor:\"\", MinCompatibilityMajor:\"\", MinCompatibilityMinor:\"\", GitVersion:\"{git}\", GitCommit:\"kbs-sim\", GitTreeState:\"clean\", BuildDate:\"{BUILD_DATE}\", GoVersion:\"{GO_VERSION}\", Compiler:\"gc\", Platform:\"linux/amd64\"}}",
                v.major, v.minor
            );
            ctx.out(&line);
        }
        "short" => ctx.out(&git),
        "yaml" => {
            let text = format!(
                "clientVersion:\n  buildDate: \"{BUILD_DATE}\"\n  compiler: gc\n  gitCommit: kbs-sim\n  gitTreeState: clean\n  gitVersion: {git}\n  goVersion: {GO_VERSION}\n  major: \"{}\"\n  minor: \"{}\"\n  platform: linux/amd64\n",
                v.major, v.minor
            );
            ctx.out(text.trim_end());
        }
        "json" => {
            let json = serde_json::json!({"clientVersion": {
                "major": v.major.to_string(), "minor": v.minor.to_string(), "gitVersion": git,
                "gitCommit": "kbs-sim", "gitTreeState": "clean", "buildDate": BUILD_DATE,
                "goVersion": GO_VERSION, "compiler": "gc", "platform": "linux/amd64"}});
            ctx.out(&serde_json::to_string_pretty(&json).unwrap_or_default());
        }
        other => return Err(Failure::Plain(format!("invalid output format: {other}"))),
    }
    Ok(())
}

use super::*;

fn steps(text: &str) -> Vec<Instruction> {
    parse(text).unwrap().steps.into_iter().map(|s| s.instruction).collect()
}

fn shell(s: &str) -> Command {
    Command::Shell(s.into())
}

fn exec(v: &[&str]) -> Command {
    Command::Exec(v.iter().map(|s| s.to_string()).collect())
}

#[test]
fn the_seeds_myrand_dockerfile_parses() {
    let text = "# the talk's example, on Debian\n\
                FROM debian-base:bookworm\n\
                COPY myrand.c Makefile /app/\n\
                WORKDIR /app\n\
                RUN apt-get install -y gcc make && \\\n    make myrand && \\\n    apt-get purge -y gcc make\n\
                ENV VAL=1\n\
                ENTRYPOINT /app/myrand $VAL\n";
    let df = parse(text).unwrap();
    let s: Vec<&Instruction> = df.steps.iter().map(|s| &s.instruction).collect();
    assert_eq!(
        s[0],
        &Instruction::From {
            image: "debian-base:bookworm".into(),
            alias: None,
            platform: None
        }
    );
    assert_eq!(
        s[1],
        &Instruction::Copy {
            add: false,
            sources: vec!["myrand.c".into(), "Makefile".into()],
            dest: "/app/".into(),
            flags: vec![]
        }
    );
    assert_eq!(
        s[3],
        &Instruction::Run {
            command: shell("apt-get install -y gcc make &&     make myrand &&     apt-get purge -y gcc make"),
            flags: vec![]
        }
    );
    assert_eq!(df.steps[3].line, 5, "a continued instruction has its first line");
    assert_eq!(s[4], &Instruction::Env(vec![("VAL".into(), "1".into())]));
    assert_eq!(s[5], &Instruction::Entrypoint(shell("/app/myrand $VAL")));
}

#[test]
fn every_instruction_and_both_command_forms() {
    let text = r#"ARG BASE=debian
FROM --platform=linux/amd64 ${BASE} AS build
SHELL ["/bin/bash", "-c"]
RUN ["make", "all"]
RUN --mount=type=cache,target=/root/.cache make
COPY --from=build --chown=1000:1000 --chmod=0755 /out/app /usr/local/bin/
ADD ["a b.tar", "/opt/"]
ENV A="x y" B=z
ENV LEGACY some value here
LABEL org.opencontainers.image.title="my app" version=1
MAINTAINER someone <s@example.test>
EXPOSE 80/tcp 53/udp
VOLUME ["/data", "/logs"]
VOLUME /cache
USER app:app
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD curl -f http://localhost/ || exit 1
HEALTHCHECK NONE
ONBUILD RUN echo child
CMD ["serve", "--port", "80"]
from scratch
"#;
    let s = steps(text);
    assert_eq!(
        s[0],
        Instruction::Arg {
            name: "BASE".into(),
            default: Some("debian".into())
        }
    );
    assert_eq!(
        s[1],
        Instruction::From {
            image: "${BASE}".into(),
            alias: Some("build".into()),
            platform: Some("linux/amd64".into())
        }
    );
    assert_eq!(s[2], Instruction::Shell(vec!["/bin/bash".into(), "-c".into()]));
    assert_eq!(
        s[3],
        Instruction::Run {
            command: exec(&["make", "all"]),
            flags: vec![]
        }
    );
    assert_eq!(
        s[4],
        Instruction::Run {
            command: shell("make"),
            flags: vec![("mount".into(), "type=cache,target=/root/.cache".into())]
        }
    );
    assert_eq!(
        s[5],
        Instruction::Copy {
            add: false,
            sources: vec!["/out/app".into()],
            dest: "/usr/local/bin/".into(),
            flags: vec![
                ("from".into(), "build".into()),
                ("chown".into(), "1000:1000".into()),
                ("chmod".into(), "0755".into())
            ]
        }
    );
    assert_eq!(
        s[6],
        Instruction::Copy {
            add: true,
            sources: vec!["a b.tar".into()],
            dest: "/opt/".into(),
            flags: vec![]
        }
    );
    assert_eq!(
        s[7],
        Instruction::Env(vec![("A".into(), "x y".into()), ("B".into(), "z".into())])
    );
    assert_eq!(
        s[8],
        Instruction::Env(vec![("LEGACY".into(), "some value here".into())])
    );
    assert_eq!(
        s[9],
        Instruction::Label(vec![
            ("org.opencontainers.image.title".into(), "my app".into()),
            ("version".into(), "1".into())
        ])
    );
    assert_eq!(s[10], Instruction::Maintainer("someone <s@example.test>".into()));
    assert_eq!(s[11], Instruction::Expose(vec!["80/tcp".into(), "53/udp".into()]));
    assert_eq!(s[12], Instruction::Volume(vec!["/data".into(), "/logs".into()]));
    assert_eq!(s[13], Instruction::Volume(vec!["/cache".into()]));
    assert_eq!(s[14], Instruction::User("app:app".into()));
    assert_eq!(s[15], Instruction::StopSignal("SIGINT".into()));
    assert_eq!(
        s[16],
        Instruction::Healthcheck {
            command: Some(shell("curl -f http://localhost/ || exit 1")),
            flags: vec![("interval".into(), "5s".into()), ("retries".into(), "2".into())]
        }
    );
    assert_eq!(
        s[17],
        Instruction::Healthcheck {
            command: None,
            flags: vec![]
        }
    );
    assert_eq!(s[18], Instruction::Onbuild("RUN echo child".into()));
    assert_eq!(s[19], Instruction::Cmd(exec(&["serve", "--port", "80"])));
    assert_eq!(
        s[20],
        Instruction::From {
            image: "scratch".into(),
            alias: None,
            platform: None
        }
    );
}

#[test]
fn directives_continuations_and_comments_as_docker_reads_them() {
    // The backtick escape (Windows style), a # syntax directive noted and ignored, a comment
    // and a blank line inside a continued RUN.
    let text = "# syntax=docker/dockerfile:1\n# escape=`\nFROM base\nRUN echo a `\n# a comment inside\n\n    && echo b\nRUN echo c:\\\\path\n";
    let df = parse(text).unwrap();
    assert_eq!(df.warnings.len(), 1, "{:?}", df.warnings);
    assert!(df.warnings[0].contains("syntax"));
    assert_eq!(
        df.steps[1].instruction,
        Instruction::Run {
            command: shell("echo a     && echo b"),
            flags: vec![]
        }
    );
    assert_eq!(
        df.steps[2].instruction,
        Instruction::Run {
            command: shell("echo c:\\\\path"),
            flags: vec![]
        }
    );
    // A directive after an instruction is a comment.
    let df = parse("FROM base\n# escape=`\nRUN a \\\n b\n").unwrap();
    assert_eq!(
        df.steps[1].instruction,
        Instruction::Run {
            command: shell("a  b"),
            flags: vec![]
        }
    );
    assert_eq!(df.steps[1].text, "RUN a  b");
}

#[test]
fn malformed_files_name_the_line_and_the_cause() {
    for (text, line, want) in [
        ("FROM a\nFROB x\n", 2, "unknown instruction FROB"),
        ("RUN x\nFROM a\n", 1, "before the first FROM"),
        ("# just a comment\n", 1, "no FROM"),
        ("FROM a\nCOPY onlyone\n", 2, "source and a destination"),
        ("FROM a\nENV\n", 2, "ENV needs"),
        ("FROM a\nLABEL novalue\n", 2, "not KEY=VALUE"),
        ("FROM a b c d\n", 1, "FROM takes"),
        ("FROM a\nSHELL /bin/sh -c\n", 2, "JSON array"),
        ("FROM a\nHEALTHCHECK --interval=1s\n", 2, "HEALTHCHECK takes"),
        ("FROM a\nHEALTHCHECK --bogus=1 CMD x\n", 2, "unknown flag --bogus"),
        ("FROM a\nCOPY --bogus=x a b\n", 2, "unknown flag --bogus"),
        ("FROM a\nONBUILD FROM b\n", 2, "ONBUILD FROM"),
        ("FROM a\nENV A=\"open\n", 2, "unterminated quote"),
        ("# escape=x\nFROM a\n", 1, "escape directive"),
    ] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(
            e.to_string().contains(want) && e.to_string().starts_with(&format!("Dockerfile:{line}:")),
            "{text:?}: {e}"
        );
    }
}

#[test]
fn variables_expand_as_dockers_do() {
    let vars = |n: &str| match n {
        "A" => Some("1".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let x = |s: &str| expand(s, '\\', &vars).unwrap();
    assert_eq!(x("$A-${A}"), "1-1");
    assert_eq!(x("${NOPE:-def} ${EMPTY:-def} ${A:-def}"), "def def 1");
    assert_eq!(x("${A:+set}|${NOPE:+set}|${EMPTY:+set}"), "set||");
    assert_eq!(x("\\$A costs $"), "$A costs $");
    assert_eq!(x("$NOPE."), ".");
    assert!(expand("${A", '\\', &vars).is_err());
    assert!(expand("${A:?x}", '\\', &vars).is_err());
    assert!(expand("${-}", '\\', &vars).is_err());
}

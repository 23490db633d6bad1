//! `parse_env_file` against systemd's rules for `Environment=` in drop-ins and for plain environment files.

use etcd_spot_sim::parse_env_file;

/// Parses `text` and compares with `want` as `K=V` strings.
#[track_caller]
fn check(text: &str, want: &[&str]) {
    let got = parse_env_file(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let got: Vec<String> = got.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(got, want, "input {text:?}");
}

#[track_caller]
fn check_err(text: &str) {
    assert!(parse_env_file(text).is_err(), "{text:?} parsed as {:?}", parse_env_file(text));
}

fn unit(lines: &str) -> String {
    format!("[Service]\n{lines}\n")
}

#[test]
fn drop_in_quoting() {
    check(&unit(r#"Environment="A=1""#), &["A=1"]);
    check(&unit(r#"Environment=A=1"#), &["A=1"]);
    check(&unit(r#"Environment=A="x y""#), &["A=x y"]);
    check(&unit(r#"Environment="A=x y" "B=z""#), &["A=x y", "B=z"]);
    check(&unit(r#"Environment=A=1 B=2   C=3"#), &["A=1", "B=2", "C=3"]);
    check(&unit(r#"Environment='A=single "quoted"'"#), &[r#"A=single "quoted""#]);
    check(&unit(r#"Environment="A=""#), &["A="]);
    check(&unit("Environment  =  \"A=1\"  "), &["A=1"]);
    check(&unit(r#"Environment="A=a"b"c""#), &["A=abc"]);
}

#[test]
fn drop_in_escapes() {
    check(&unit(r#"Environment="A=say \"hi\"""#), &[r#"A=say "hi""#]);
    check(&unit(r#"Environment="A=back\\slash""#), &[r"A=back\slash"]);
    check(&unit(r#"Environment="A=line1\nline2""#), &["A=line1\nline2"]);
    check(&unit(r#"Environment=A=tab\there"#), &["A=tab\there"]);
    check(&unit(r#"Environment="A=\x41\101\u00e9""#), &["A=AAé"]);
    check(&unit(r#"Environment="A=it\'s""#), &["A=it's"]);
    check(&unit(r#"Environment=A=one\stwo"#), &["A=one two"]);
}

#[test]
fn drop_in_specifiers() {
    check(&unit(r#"Environment="A=100%%""#), &["A=100%"]);
    check(&unit(r#"Environment="A=%%n%%%%""#), &["A=%n%%"]);
    check_err(&unit(r#"Environment="A=%n""#));
    check_err(&unit(r#"Environment="A=50%""#));
}

#[test]
fn drop_in_structure() {
    check("# comment\n\n[Service]\n; other comment\nEnvironment=A=1\nEnvironment=B=2\n", &["A=1", "B=2"]);
    // Only [Service] Environment= lines count.
    check("[Unit]\nDescription=x=y\n[Service]\nExecStart=/bin/true\nEnvironment=A=1\n", &["A=1"]);
    check("[Unit]\nEnvironment=A=1\n", &[]);
    // A later assignment replaces an earlier one in place.
    check(&unit("Environment=A=1 B=2\nEnvironment=A=3"), &["A=3", "B=2"]);
    // An empty Environment= resets the list.
    check(&unit("Environment=A=1\nEnvironment=\nEnvironment=B=2"), &["B=2"]);
    // Line continuation.
    check(&unit("Environment=A=1 \\\n  B=2"), &["A=1", "B=2"]);
    check("[Service]\r\nEnvironment=\"A=1\"\r\n", &["A=1"]);
}

#[test]
fn drop_in_errors() {
    check_err(&unit(r#"Environment="A=unterminated"#));
    check_err(&unit(r#"Environment="A=bad\qescape""#));
    check_err(&unit(r#"Environment="A=trailing\"#));
    check_err(&unit(r#"Environment="NOEQUALS""#));
    check_err(&unit(r#"Environment="1A=x""#));
    check_err(&unit(r#"Environment="A-B=x""#));
    check_err(&unit(r#"Environment="=x""#));
    check_err(&unit(r#"Environment="A=\x00""#));
    check_err("[Service\nEnvironment=A=1\n");
    check_err("[Service]\nEnvironment\n");
}

#[test]
fn plain_file() {
    check("A=1\nB=2\n", &["A=1", "B=2"]);
    check("A=1", &["A=1"]);
    check("", &[]);
    check("# only a comment\n\n", &[]);
    check("# c\n; c\n\nA=1\n  # indented comment\nB=2", &["A=1", "B=2"]);
    check("  A  =  spaced value  \n", &["A=spaced value"]);
    check("A=\"quoted value\"\n", &["A=quoted value"]);
    check("A=\"  keep spaces  \"\n", &["A=  keep spaces  "]);
    check("A='single $literal \\n'\n", &["A=single $literal \\n"]);
    check("A=\"say \\\"hi\\\" \\\\ \\$HOME \\`x\\`\"\n", &["A=say \"hi\" \\ $HOME `x`"]);
    check("A=\"keep \\n as is\"\n", &["A=keep \\n as is"]);
    check("A=unquoted\\ escape\n", &["A=unquoted escape"]);
    check("A=\n", &["A="]);
    check("A=\"\"\n", &["A="]);
    check("A=has=equals\n", &["A=has=equals"]);
    check("A=\"multi\nline\"\n", &["A=multi\nline"]);
    check("A=con\\\ntinued\n", &["A=continued"]);
    check("A=1\nA=2\nB=3\n", &["A=2", "B=3"]);
    check("A=1\r\nB=2\r\n", &["A=1", "B=2"]);
    check("A=x # not a comment\n", &["A=x # not a comment"]);
    check(
        "ETCD_INITIAL_CLUSTER=\"a=http://127.0.0.1:2380,b=http://127.0.0.2:2380\"\n",
        &["ETCD_INITIAL_CLUSTER=a=http://127.0.0.1:2380,b=http://127.0.0.2:2380"],
    );
    // A plain file is not a drop-in: `Environment` is just a key there.
    check("Environment=\"A=1\"\n", &["Environment=A=1"]);
}

#[test]
fn plain_file_errors() {
    check_err("A=\"unterminated\n");
    check_err("A='unterminated\n");
    check_err("NOEQUALS\n");
    check_err("1A=x\n");
    check_err("A B=x\n");
    check_err("A-B=x\n");
}

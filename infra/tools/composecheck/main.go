// composecheck validates a Compose project the way Docker itself reads it, with no Docker
// engine: the compose files go through compose-go's loader (the library `docker compose` is
// built on: Compose-specification schema, interpolation, normalization, consistency checks),
// and every Dockerfile a service builds goes through BuildKit's Dockerfile front end in lint
// mode (the rules of `docker build --check`), with the build target checked against its
// stages and every COPY/ADD source checked against the build context and its .dockerignore.
//
// Usage:
//
//	composecheck [-project-directory DIR] [-dotenv] [-f FILE]...
//
// Variables are interpolated from the process environment (and DIR/.env with -dotenv, as
// `docker compose` does by default). On success it prints one JSON document on stdout:
//
//	{"project": <the resolved project, as `docker compose config --format json`>,
//	 "dockerfiles": [{"path", "context", "targets", "stages": [...effective image config...]}]}
//
// Problems are printed on stderr, one per line, and the exit status is 1 (2 for bad usage).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	digest "github.com/opencontainers/go-digest"
)

type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

// stageInfo is a stage's effective image configuration: what a container started from that
// target runs with, following FROM chains through earlier stages.
type stageInfo struct {
	Name        string            `json:"name"`
	Base        string            `json:"base"`
	User        string            `json:"user"`
	Workdir     string            `json:"workdir"`
	Entrypoint  []string          `json:"entrypoint"`
	Cmd         []string          `json:"cmd"`
	CmdShell    bool              `json:"cmd_shell_form"`
	Healthcheck []string          `json:"healthcheck"`
	Env         map[string]string `json:"env"`
	Expose      []string          `json:"expose"`
	Runs        []string          `json:"runs"`
	// COPY/ADD sources taken from the build context (not --from another stage).
	ContextSources []string `json:"context_sources"`
	CopiesFrom     []string `json:"copies_from"`
}

type dockerfileReport struct {
	Path    string   `json:"path"`
	Context string   `json:"context"`
	Targets []string `json:"targets"`
	// Images the Dockerfile pulls (FROM and COPY --from), as BuildKit asked the registry for them.
	Images []string    `json:"images"`
	Stages []stageInfo `json:"stages"`
}

type report struct {
	Project     json.RawMessage    `json:"project"`
	Dockerfiles []dockerfileReport `json:"dockerfiles"`
}

// offlineResolver stands in for a registry: lint must not pull base images. Each base image
// resolves to a minimal non-empty Linux image whose only setting is the usual PATH; the
// references asked for are recorded (a mistyped stage name in COPY --from or FROM shows up
// there as an image reference, which a registry would have refused).
type offlineResolver struct{ refs *[]string }

func (r offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	if !slices.Contains(*r.refs, ref) {
		*r.refs = append(*r.refs, ref)
	}
	cfg := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + strings.Repeat("0", 64)}},
	}
	dt, err := json.Marshal(cfg)
	return ref, "", dt, err
}

func main() {
	var files fileList
	projectDir := flag.String("project-directory", ".", "project directory (relative paths and .env are resolved from it)")
	dotenv := flag.Bool("dotenv", false, "also read PROJECT_DIRECTORY/.env, as docker compose does")
	flag.Var(&files, "f", "compose file (repeatable; default: PROJECT_DIRECTORY/docker-compose.yml)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: composecheck [-project-directory DIR] [-dotenv] [-f FILE]...")
		os.Exit(2)
	}
	dir, err := filepath.Abs(*projectDir)
	if err != nil {
		fatal(err)
	}
	if len(files) == 0 {
		files = fileList{filepath.Join(dir, "docker-compose.yml")}
	}

	rep, problems := check(context.Background(), dir, files, *dotenv)
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p)
	}
	if rep != nil {
		out, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			fatal(err)
		}
		fmt.Println(string(out))
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "composecheck:", err)
	os.Exit(1)
}

func check(ctx context.Context, dir string, files []string, dotenv bool) (*report, []string) {
	optFns := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(dir),
		cli.WithOsEnv,
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	}
	if dotenv {
		optFns = append(optFns, cli.WithDotEnv)
	}
	opts, err := cli.NewProjectOptions(files, optFns...)
	if err != nil {
		return nil, []string{"compose: " + err.Error()}
	}
	project, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, []string{"compose: " + err.Error()}
	}
	projectJSON, err := project.MarshalJSON()
	if err != nil {
		return nil, []string{"compose: " + err.Error()}
	}

	var problems []string
	rep := &report{Project: projectJSON}
	type buildUse struct {
		context, dockerfile string
		targets             map[string][]string // target -> services
	}
	uses := map[string]*buildUse{}
	for _, name := range project.ServiceNames() {
		svc := project.Services[name]
		if svc.Build == nil {
			continue
		}
		bctx := svc.Build.Context
		if strings.Contains(bctx, "://") || strings.HasPrefix(bctx, "git@") {
			problems = append(problems, fmt.Sprintf("service %s: remote build context %q is not checked", name, bctx))
			continue
		}
		df := svc.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if !filepath.IsAbs(df) {
			df = filepath.Join(bctx, df)
		}
		u := uses[df]
		if u == nil {
			u = &buildUse{context: bctx, dockerfile: df, targets: map[string][]string{}}
			uses[df] = u
		} else if u.context != bctx {
			problems = append(problems, fmt.Sprintf("%s is built with two contexts (%s, %s); not checked", df, u.context, bctx))
		}
		u.targets[svc.Build.Target] = append(u.targets[svc.Build.Target], name)
	}

	keys := make([]string, 0, len(uses))
	for k := range uses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, df := range keys {
		u := uses[df]
		dr, ps := checkDockerfile(ctx, project, u.dockerfile, u.context, u.targets)
		problems = append(problems, ps...)
		if dr != nil {
			rep.Dockerfiles = append(rep.Dockerfiles, *dr)
		}
	}
	return rep, problems
}

func checkDockerfile(ctx context.Context, project *types.Project, path, bctx string, targets map[string][]string) (*dockerfileReport, []string) {
	rel := func(p string) string {
		if r, err := filepath.Rel(project.WorkingDir, p); err == nil {
			return r
		}
		return p
	}
	name := rel(path)
	dt, err := os.ReadFile(path)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %v", name, err)}
	}
	var problems []string

	// 1. BuildKit's own front end, in lint mode: syntax, instruction flags, stage references,
	//    variables, and every rule of `docker build --check`.
	src := llb.Local("dockerfile")
	sourceMap := llb.NewSourceMap(&src, name, "Dockerfile", dt)
	if sourceMap.Definition, err = src.Marshal(ctx); err != nil {
		return nil, []string{fmt.Sprintf("%s: %v", name, err)}
	}
	images := []string{}
	res, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{
		SourceMap:    sourceMap,
		MetaResolver: offlineResolver{refs: &images},
	})
	if err != nil {
		problems = append(problems, fmt.Sprintf("%s: lint: %v", name, err))
	} else {
		if res.Error != nil {
			problems = append(problems, fmt.Sprintf("%s:%s: build error: %s", name, lintLine(&res.Error.Location), res.Error.Message))
		}
		for _, w := range res.Warnings {
			problems = append(problems, fmt.Sprintf("%s:%s: %s: %s (%s)", name, lintLine(w.Location), w.RuleName, w.Detail, w.URL))
		}
	}

	// 2. Stages, and the effective configuration of each.
	ast, err := parser.Parse(strings.NewReader(string(dt)))
	if err != nil {
		return nil, append(problems, fmt.Sprintf("%s: %v", name, err))
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		return nil, append(problems, fmt.Sprintf("%s: %v", name, err))
	}
	globals := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				globals[kv.Key] = *kv.Value
			} else {
				globals[kv.Key] = ""
			}
		}
	}
	lex := shell.NewLex(ast.EscapeToken)
	infos := make([]stageInfo, 0, len(stages))
	byName := map[string]int{}
	for i, st := range stages {
		base, _, err := lex.ProcessWord(st.BaseName, shell.EnvsFromSlice(envSlice(globals)))
		if err != nil {
			base = st.BaseName
		}
		info := stageInfo{Name: st.Name, Base: base, Env: map[string]string{}}
		if j, ok := byName[strings.ToLower(base)]; ok {
			parent := infos[j]
			info.User, info.Workdir, info.Healthcheck = parent.User, parent.Workdir, slices.Clone(parent.Healthcheck)
			info.Entrypoint, info.Cmd, info.CmdShell = slices.Clone(parent.Entrypoint), slices.Clone(parent.Cmd), parent.CmdShell
			for k, v := range parent.Env {
				info.Env[k] = v
			}
			info.Expose = slices.Clone(parent.Expose)
		}
		for _, c := range st.Commands {
			switch c := c.(type) {
			case *instructions.UserCommand:
				info.User = c.User
			case *instructions.WorkdirCommand:
				info.Workdir = c.Path
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					info.Env[kv.Key] = kv.Value
				}
			case *instructions.ExposeCommand:
				info.Expose = append(info.Expose, c.Ports...)
			case *instructions.HealthCheckCommand:
				info.Healthcheck = slices.Clone(c.Health.Test)
			case *instructions.EntrypointCommand:
				info.Entrypoint = shellForm(c.ShellDependantCmdLine)
				info.Cmd, info.CmdShell = nil, false // ENTRYPOINT resets an inherited CMD
			case *instructions.CmdCommand:
				info.Cmd, info.CmdShell = slices.Clone(c.CmdLine), c.PrependShell
			case *instructions.RunCommand:
				info.Runs = append(info.Runs, strings.Join(c.CmdLine, " "))
			case *instructions.CopyCommand:
				if c.From != "" {
					info.CopiesFrom = append(info.CopiesFrom, c.From)
					continue
				}
				info.ContextSources = append(info.ContextSources, c.SourcePaths...)
			case *instructions.AddCommand:
				info.ContextSources = append(info.ContextSources, c.SourcePaths...)
			}
		}
		if st.Name != "" {
			byName[strings.ToLower(st.Name)] = i
		}
		infos = append(infos, info)
	}

	// 3. Targets the compose file asks for must be stages of this Dockerfile.
	var targetNames []string
	for t, svcs := range targets {
		targetNames = append(targetNames, t)
		if t == "" {
			continue
		}
		if _, ok := byName[strings.ToLower(t)]; !ok {
			problems = append(problems, fmt.Sprintf("%s: target %q (service %s) is not a stage of this Dockerfile", name, t, strings.Join(svcs, ", ")))
		}
	}
	sort.Strings(targetNames)

	// 4. Every COPY/ADD source from the context exists there and survives .dockerignore.
	problems = append(problems, checkContextSources(name, bctx, path, infos)...)

	sort.Strings(images)
	return &dockerfileReport{Path: name, Context: rel(bctx), Targets: targetNames, Images: images, Stages: infos}, problems
}

func checkContextSources(name, bctx, dockerfile string, infos []stageInfo) []string {
	var problems []string
	ignorePath := dockerfile + ".dockerignore" // BuildKit prefers <Dockerfile>.dockerignore
	if _, err := os.Stat(ignorePath); err != nil {
		ignorePath = filepath.Join(bctx, ".dockerignore")
	}
	var patterns []string
	if f, err := os.Open(ignorePath); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return []string{fmt.Sprintf("%s: %v", ignorePath, err)}
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", ignorePath, err)}
	}
	excluded := func(rel string) bool {
		m, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		return err == nil && m
	}
	seen := map[string]bool{}
	for _, st := range infos {
		for _, src := range st.ContextSources {
			if seen[src] || strings.Contains(src, "://") {
				continue
			}
			seen[src] = true
			clean := filepath.Clean(strings.TrimPrefix(src, "/"))
			matches, _ := filepath.Glob(filepath.Join(bctx, clean))
			if len(matches) == 0 {
				problems = append(problems, fmt.Sprintf("%s: stage %s copies %q, which is not in the build context", name, st.Name, src))
				continue
			}
			kept := 0
			for _, m := range matches {
				rel, _ := filepath.Rel(bctx, m)
				if excluded(rel) {
					continue
				}
				// A directory must keep at least one file.
				if fi, err := os.Stat(m); err == nil && fi.IsDir() {
					if !dirKeepsAFile(m, bctx, excluded) {
						continue
					}
				}
				kept++
			}
			if kept == 0 {
				problems = append(problems, fmt.Sprintf("%s: stage %s copies %q, but .dockerignore leaves nothing of it in the build context", name, st.Name, src))
			}
		}
	}
	return problems
}

func dirKeepsAFile(dir, bctx string, excluded func(string) bool) bool {
	found := errors.New("found")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(bctx, p)
		if excluded(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			return found
		}
		return nil
	})
	return errors.Is(err, found)
}

func shellForm(c instructions.ShellDependantCmdLine) []string {
	if c.PrependShell {
		return append([]string{"/bin/sh", "-c"}, strings.Join(c.CmdLine, " "))
	}
	return slices.Clone(c.CmdLine)
}

func envSlice(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func lintLine(loc *pb.Location) string {
	if loc == nil || len(loc.Ranges) == 0 || loc.Ranges[0].Start == nil {
		return "?"
	}
	return fmt.Sprint(loc.Ranges[0].Start.Line)
}

// Renders conversations through a Modelfile's TEMPLATE the way Ollama v0.33.0 builds a chat prompt, so the
// ollama node can prove its TEMPLATE gives the text the model was trained on without an Ollama server:
//   - Modelfile: TEMPLATE and SYSTEM read as parser/parser.go reads them ("""…""", "…" or a bare word);
//   - server/routes.go ChatHandler: the Modelfile's SYSTEM is prepended when the first message is not a system one;
//   - template/template.go Parse and Execute (the .Messages path): text/template with missingkey=zero and Ollama's
//     functions; collate() merges consecutive same-role messages with "\n\n" and joins every system message
//     into .System; each message is a templateMessage; .Response is "".
//
// stdin: {"modelfile": "<text>", "conversations": [[{"role", "content"}]]}
// stdout: {"template": "…", "system": "…", "renders": ["…"]}; a problem: its message on stderr, exit 1.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/template"
	"time"
)

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type request struct {
	Modelfile     string      `json:"modelfile"`
	Conversations [][]message `json:"conversations"`
}

type response struct {
	Template string   `json:"template"`
	System   string   `json:"system"`
	Renders  []string `json:"renders"`
}

// templateMessage has the fields of Ollama's template.templateMessage, so a template naming any of them runs.
type templateMessage struct {
	Role       string
	Content    string
	Thinking   string
	Images     []string
	ToolCalls  []any
	ToolName   string
	ToolCallID string
}

// Ollama's template.funcs, less toTypeScriptType (tool schemas are not rendered here).
var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"currentDate":   func(args ...string) string { return time.Now().Format("2006-01-02") },
	"yesterdayDate": func(args ...string) string { return time.Now().AddDate(0, 0, -1).Format("2006-01-02") },
}

// unquote is parser.unquote: triple quotes, then double quotes, else the value as written.
func unquote(s string) (string, error) {
	if strings.HasPrefix(s, `"""`) {
		if len(s) >= 6 && strings.HasSuffix(s, `"""`) {
			return s[3 : len(s)-3], nil
		}
		return "", errors.New(`unterminated """`)
	}
	if strings.HasPrefix(s, `"`) {
		if len(s) >= 2 && strings.HasSuffix(s, `"`) {
			return s[1 : len(s)-1], nil
		}
		return "", errors.New(`unterminated "`)
	}
	return s, nil
}

// command reads the last value of a Modelfile command (the one Ollama keeps), or "" when it is absent.
func command(modelfile, name string) (string, error) {
	value := ""
	lines := strings.Split(modelfile, "\n")
	for i := 0; i < len(lines); i++ {
		fields := strings.SplitN(strings.TrimLeft(lines[i], " \t"), " ", 2)
		if len(fields) < 2 || !strings.EqualFold(fields[0], name) {
			continue
		}
		raw := strings.TrimLeft(fields[1], " \t")
		if strings.HasPrefix(raw, `"""`) {
			// A triple-quoted value runs over lines until the line that ends it.
			for !(len(strings.TrimRight(raw, " \t")) >= 6 && strings.HasSuffix(strings.TrimRight(raw, " \t"), `"""`)) {
				i++
				if i == len(lines) {
					return "", fmt.Errorf("Modelfile: %s: unterminated \"\"\"", name)
				}
				raw += "\n" + lines[i]
			}
		}
		v, err := unquote(strings.TrimSpace(raw))
		if err != nil {
			return "", fmt.Errorf("Modelfile: %s: %v", name, err)
		}
		value = v
	}
	return value, nil
}

func collate(msgs []message) (string, []*templateMessage) {
	var system []string
	var collated []*templateMessage
	for _, m := range msgs {
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if n := len(collated); n > 0 && collated[n-1].Role == m.Role && m.Role != "tool" {
			collated[n-1].Content += "\n\n" + m.Content
		} else {
			collated = append(collated, &templateMessage{Role: m.Role, Content: m.Content})
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func run() error {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		return fmt.Errorf("reading the request: %v", err)
	}
	text, err := command(req.Modelfile, "TEMPLATE")
	if err != nil {
		return err
	}
	if !strings.Contains(text, ".Messages") {
		return errors.New("the TEMPLATE does not range over .Messages: this checker follows Ollama's chat path only")
	}
	defaultSystem, err := command(req.Modelfile, "SYSTEM")
	if err != nil {
		return err
	}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(text)
	if err != nil {
		return fmt.Errorf("TEMPLATE: %v", err)
	}
	out := response{Template: text, System: defaultSystem, Renders: []string{}}
	for i, conv := range req.Conversations {
		msgs := conv
		if defaultSystem != "" && (len(msgs) == 0 || msgs[0].Role != "system") {
			msgs = append([]message{{Role: "system", Content: defaultSystem}}, msgs...)
		}
		system, collated := collate(msgs)
		var b bytes.Buffer
		err := tmpl.Execute(&b, map[string]any{
			"System":     system,
			"Messages":   collated,
			"Tools":      []any(nil),
			"Response":   "",
			"Think":      false,
			"ThinkLevel": "",
			"IsThinkSet": false,
		})
		if err != nil {
			return fmt.Errorf("conversation %d: %v", i, err)
		}
		out.Renders = append(out.Renders, b.String())
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

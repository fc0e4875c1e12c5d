// Start-up steps shared by --print and the daemon: privilege check, probe load, interface choice.
// Each step's Error is the one line flowlatd prints (after "flowlatd: ") before exiting 2.
#pragma once

#include "os/interfaces.hpp"
#include "os/result.hpp"
#include "probe/probe_session.hpp"

#include <string>
#include <vector>

namespace flowlat::startup {

// Checks capabilities, loads the probe and starts its session on `loop`. A failed load's Error
// carries the log's tail as its detail (probe::load_failure).
Result<std::unique_ptr<probe::ProbeSession>> load_probe(const probe::ProbeOptions& options, EventLoop& loop,
                                                        probe::EventSink sink);

// Resolves names and globs. A plain name that does not exist is an error; a glob may match nothing.
// Empty patterns mean the interfaces of the default route.
Result<std::vector<interfaces::Interface>> resolve_interfaces(const std::vector<std::string>& patterns);

// The Error of a step that failed, as a sentence: "cannot " + what.
Error cannot(const Error& error);

// The text flowlatd prints for a start-up failure: "flowlatd: " and the error's message, then,
// when it has detail, "; <title>:" and the detail's lines, each indented, so that the error line
// stays the only one that is not: "flowlatd: loading the BPF program flowlat_ingress failed:
// Permission denied; verifier log (last 25 of 812 lines):" and the tail.
std::string report_text(const Error& error);

// Prints report_text to stderr.
void report(const Error& error);

// After the loop failed and everything was detached, before exiting 3 (as main's catch-all does):
// "flowlatd: internal error, detached and stopped: <message>".
void report_internal(const Error& error);

} // namespace flowlat::startup

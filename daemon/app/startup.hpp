// Start-up steps shared by --print and the daemon: privilege check, probe load, interface choice.
#pragma once

#include "os/interfaces.hpp"
#include "probe/probe_session.hpp"

#include <string>
#include <vector>

namespace flowlat::startup {

// A start-up failure: the one line to print before exiting 2, and any detail (the verifier
// log's tail, each line indented so the error line stays the only one that is not).
struct Failure {
    std::string line;
    std::string detail;
};

// "flowlatd: loading the BPF program flowlat_ingress failed: Permission denied; verifier log
// (last 25 of 812 lines):" and the indented tail.
Failure load_failure(const probe::LoadError& error);

// Checks capabilities, then loads the probe. Fills *failure and returns null on error.
std::unique_ptr<probe::ProbeSession> load_probe(const probe::ProbeOptions& options, EventLoop& loop,
                                                probe::EventSink sink, Failure* failure);

// Resolves names and globs. A plain name that does not exist is an error; a glob may match nothing.
// Empty patterns mean the interfaces of the default route.
bool resolve_interfaces(const std::vector<std::string>& patterns, std::vector<interfaces::Interface>* resolved,
                        Failure* failure);

void report(const Failure& failure);

} // namespace flowlat::startup

// libbpf's output during a load: kept, not printed, and reported once as the log's tail.
#include "probe/probe.hpp"
#include "app/startup.hpp"
#include "log_sink.hpp"

#include <bpf/libbpf.h>
#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include <sstream>
#include <string>

using namespace flowlat;

namespace {

// A verifier log as libbpf 1.1 hands it over: one message, the whole log between markers.
std::string verifier_message(int lines, const char* program = "flowlat_ingress")
{
    std::string message = std::string("libbpf: prog '") + program + "': -- BEGIN PROG LOAD LOG --\n";
    for (int i = 0; i < lines; ++i) message += std::to_string(i) + ": (bf) r6 = r1 ; R1=ctx() R6_w=ctx()\n";
    message += "R2 invalid mem access 'scalar'\nprocessed 4821 insns (limit 1000000)\n";
    return message + "-- END PROG LOAD LOG --\n";
}

} // namespace

TEST_CASE("the tail of a verifier log handed over in one message ends at the rejection")
{
    probe::LogCapture capture;
    capture.add(true, "libbpf: prog 'flowlat_ingress': BPF program load failed: Permission denied\n");
    capture.add(true, verifier_message(3000));
    capture.add(true, "libbpf: prog 'flowlat_ingress': failed to load: -13\n");
    capture.add(true, "libbpf: failed to load object 'flowlat_probe'\n");

    const probe::LogTail tail = capture.tail(25);
    CHECK(tail.verifier_log);
    CHECK(tail.program == "flowlat_ingress");
    CHECK(tail.total_lines == 3002);
    REQUIRE(tail.lines.size() == 25);
    CHECK(tail.lines.back() == "processed 4821 insns (limit 1000000)");
    CHECK(tail.lines[tail.lines.size() - 2] == "R2 invalid mem access 'scalar'");
    CHECK(tail.lines.front() == "2977: (bf) r6 = r1 ; R1=ctx() R6_w=ctx()");
}

TEST_CASE("a short verifier log is shown whole, and a last line glued to the END marker is kept")
{
    probe::LogCapture capture;
    capture.add(true, "libbpf: prog 'flowlat_egr_ip': -- BEGIN PROG LOAD LOG --\n"
                      "0: R1=ctx() R10=fp0\n"
                      "invalid access to packet, off=14 size=1-- END PROG LOAD LOG --\n");
    const probe::LogTail tail = capture.tail(25);
    CHECK(tail.program == "flowlat_egr_ip");
    CHECK(tail.total_lines == 2);
    CHECK(tail.lines == std::vector<std::string>{"0: R1=ctx() R10=fp0", "invalid access to packet, off=14 size=1"});
}

TEST_CASE("without a verifier log the tail is libbpf's last warnings, without info or debug lines")
{
    probe::LogCapture capture;
    capture.add(false, "libbpf: sec '.reltc': relo #1: insn #4 against 'counters'\n");
    capture.add(true, "libbpf: map 'flows': failed to create: Operation not permitted(-1)\n");
    capture.add(false, "libbpf: prog 'flowlat_ingress': found map 2 (counters)\n");
    capture.add(true, "libbpf: failed to load object 'flowlat_probe'\n");
    const probe::LogTail tail = capture.tail(25);
    CHECK_FALSE(tail.verifier_log);
    CHECK(tail.program.empty());
    CHECK(tail.lines == std::vector<std::string>{"map 'flows': failed to create: Operation not permitted(-1)",
                                                 "failed to load object 'flowlat_probe'"});
}

TEST_CASE("a load failure is one error line followed by the indented tail")
{
    probe::LogCapture capture;
    capture.add(true, verifier_message(100));
    const Error error = probe::load_failure("loading the BPF program flowlat_ingress failed", EACCES, capture.tail(25));
    CHECK(error.message() == "loading the BPF program flowlat_ingress failed: Permission denied");
    CHECK(error.detail.size() == 25);
    std::istringstream text(startup::report_text(error));
    std::string line;
    std::getline(text, line);
    CHECK(line == "flowlatd: loading the BPF program flowlat_ingress failed: Permission denied;"
                  " verifier log (last 25 of 102 lines):");
    int lines = 0;
    std::string last;
    for (; std::getline(text, line); ++lines) {
        CHECK(line.starts_with("    "));
        last = line;
    }
    CHECK(lines == 25);
    CHECK(last == "    processed 4821 insns (limit 1000000)");

    const Error plain = probe::load_failure("opening the embedded BPF object failed", ENOMEM, {});
    CHECK(startup::report_text(plain) == "flowlatd: opening the embedded BPF object failed: Cannot allocate memory\n");
    CHECK(plain.detail.empty());

    const Error one_warning =
        probe::load_failure("loading the BPF program failed", EPERM, {false, "", {"failed to load object 'x'"}, 1});
    CHECK(startup::report_text(one_warning) ==
          "flowlatd: loading the BPF program failed: Operation not permitted; libbpf said (last 1 line):\n"
          "    failed to load object 'x'\n");
}

TEST_CASE("while a capture runs libbpf's warnings reach it, not the log, a success replays them")
{
    probe::route_libbpf_logging();
    LogSink sink;
    const char garbage[] = "this is not an ELF object";
    {
        probe::LogCapture capture;
        bpf_object* object = bpf_object__open_mem(garbage, sizeof(garbage), nullptr);
        CHECK(object == nullptr);
        const probe::LogTail tail = capture.tail(25);
        CHECK_FALSE(tail.verifier_log);
        CHECK_FALSE(tail.lines.empty());
        CHECK(sink.text().empty());
        capture.replay_warnings();
        CHECK(sink.text().find("warning libbpf: ") != std::string::npos);
    }
    // Outside a capture a warning goes to the log at once, one record per line.
    const std::string before = sink.text();
    CHECK(bpf_object__open_mem(garbage, sizeof(garbage), nullptr) == nullptr);
    CHECK(sink.text().size() > before.size());
}

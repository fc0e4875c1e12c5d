#include "probe/tc_filter_query.hpp"

#include <catch2/catch.hpp>

using flowlat::probe::program_name_of;

TEST_CASE("program_name_of takes the program name out of a TCA_BPF_NAME", "[tc_filter_query]")
{
    CHECK(program_name_of("flowlat_ingress:[42]") == "flowlat_ingress"); // libbpf's bpf_tc_attach
    CHECK(program_name_of("flowlat_egr_ip:[7]") == "flowlat_egr_ip");
    CHECK(program_name_of("foreign.o:[tc]") == "foreign.o"); // tc filter add ... bpf obj foreign.o sec tc
    CHECK(program_name_of("flowlat_ingress") == "flowlat_ingress");
    CHECK(program_name_of("").empty());
}

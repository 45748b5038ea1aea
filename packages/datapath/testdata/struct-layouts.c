// Host program (not BPF): prints the sizes and member offsets of the libbpf
// structs that src/libbpf.ts lays out by hand, as JSON, for libbpf.test.ts.
#include <stddef.h>
#include <stdio.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>

#define BEGIN(s) printf("%s\"" #s "\":{\"size\":%zu,\"offsets\":{", first_struct ? "" : ",", sizeof(struct s)); first_struct = 0; first_member = 1
#define MEMBER(s, m) printf("%s\"" #m "\":%zu", first_member ? "" : ",", offsetof(struct s, m)); first_member = 0
#define END() printf("}}")

int main(void)
{
	int first_struct = 1, first_member;

	printf("{");
	BEGIN(bpf_object_open_opts);
	MEMBER(bpf_object_open_opts, sz);
	MEMBER(bpf_object_open_opts, object_name);
	MEMBER(bpf_object_open_opts, relaxed_maps);
	MEMBER(bpf_object_open_opts, pin_root_path);
	MEMBER(bpf_object_open_opts, kconfig);
	MEMBER(bpf_object_open_opts, btf_custom_path);
	MEMBER(bpf_object_open_opts, kernel_log_buf);
	MEMBER(bpf_object_open_opts, kernel_log_size);
	MEMBER(bpf_object_open_opts, kernel_log_level);
	END();
	BEGIN(bpf_tc_hook);
	MEMBER(bpf_tc_hook, sz);
	MEMBER(bpf_tc_hook, ifindex);
	MEMBER(bpf_tc_hook, attach_point);
	MEMBER(bpf_tc_hook, parent);
	END();
	BEGIN(bpf_tc_opts);
	MEMBER(bpf_tc_opts, sz);
	MEMBER(bpf_tc_opts, prog_fd);
	MEMBER(bpf_tc_opts, flags);
	MEMBER(bpf_tc_opts, prog_id);
	MEMBER(bpf_tc_opts, handle);
	MEMBER(bpf_tc_opts, priority);
	END();
	BEGIN(bpf_map_batch_opts);
	MEMBER(bpf_map_batch_opts, sz);
	MEMBER(bpf_map_batch_opts, elem_flags);
	MEMBER(bpf_map_batch_opts, flags);
	END();
	BEGIN(bpf_map_info);
	MEMBER(bpf_map_info, type);
	MEMBER(bpf_map_info, id);
	MEMBER(bpf_map_info, key_size);
	MEMBER(bpf_map_info, value_size);
	MEMBER(bpf_map_info, max_entries);
	MEMBER(bpf_map_info, map_flags);
	MEMBER(bpf_map_info, name);
	MEMBER(bpf_map_info, ifindex);
	MEMBER(bpf_map_info, btf_vmlinux_value_type_id);
	MEMBER(bpf_map_info, netns_dev);
	MEMBER(bpf_map_info, netns_ino);
	MEMBER(bpf_map_info, btf_id);
	MEMBER(bpf_map_info, btf_key_type_id);
	MEMBER(bpf_map_info, btf_value_type_id);
	MEMBER(bpf_map_info, map_extra);
	END();
	BEGIN(bpf_test_run_opts);
	MEMBER(bpf_test_run_opts, sz);
	MEMBER(bpf_test_run_opts, data_in);
	MEMBER(bpf_test_run_opts, data_out);
	MEMBER(bpf_test_run_opts, data_size_in);
	MEMBER(bpf_test_run_opts, data_size_out);
	MEMBER(bpf_test_run_opts, ctx_in);
	MEMBER(bpf_test_run_opts, ctx_out);
	MEMBER(bpf_test_run_opts, ctx_size_in);
	MEMBER(bpf_test_run_opts, ctx_size_out);
	MEMBER(bpf_test_run_opts, retval);
	MEMBER(bpf_test_run_opts, repeat);
	MEMBER(bpf_test_run_opts, duration);
	MEMBER(bpf_test_run_opts, flags);
	MEMBER(bpf_test_run_opts, cpu);
	MEMBER(bpf_test_run_opts, batch_size);
	END();
	printf("}\n");
	return 0;
}

"""Names a node or input cannot have, because the generated module could not hold or call it.

A node's name is an attribute of the GraphModule (`self.block1`) and an input's name is a parameter
of its `forward`, so Python keywords, `self`, dunder names and the attributes of `nn.Module` and
`fx.GraphModule` would not compile. The attribute list is data, so that `zoo check` needs no torch;
tests/test_hardening_spec.py checks it against torch 2.13.0's classes and names the command
that regenerates it when torch adds one.
"""
from __future__ import annotations

import keyword

MODULE_ATTRIBUTES = frozenset((
    'T_destination', '_apply', '_backward_hooks', '_backward_pre_hooks', '_boxed_call', '_buffers',
    '_call_impl', '_code', '_compiled_call_impl', '_create_node_hooks', '_deepcopy_hooks', '_deepcopy_init',
    '_erase_node_hooks', '_forward_hooks', '_forward_hooks_always_called', '_forward_hooks_with_kwargs',
    '_forward_pre_hooks', '_forward_pre_hooks_with_kwargs', '_get_backward_hooks', '_get_backward_pre_hooks',
    '_get_name', '_graph', '_is_full_backward_hook', '_lineno_map', '_load_from_state_dict',
    '_load_state_dict_post_hooks', '_load_state_dict_pre_hooks', '_maybe_warn_non_full_backward_hook',
    '_modules', '_named_members', '_non_persistent_buffers_set', '_parameters', '_prologue_start',
    '_recompile_submodules', '_register_create_node_hook', '_register_deepcopy_hook',
    '_register_erase_node_hook', '_register_load_state_dict_pre_hook', '_register_replace_node_hook',
    '_register_state_dict_hook', '_replace_hooks', '_replicate_for_data_parallel', '_save_to_state_dict',
    '_set_replace_hook', '_slow_forward', '_state_dict_hooks', '_state_dict_pre_hooks', '_tracer_cls',
    '_tracer_extras', '_unregister_create_node_hook', '_unregister_deepcopy_hook',
    '_unregister_erase_node_hook', '_unregister_replace_node_hook', '_version', '_wrapped_call',
    '_wrapped_call_impl', 'add_module', 'add_submodule', 'apply', 'bfloat16', 'buffers', 'call_super_init',
    'children', 'code', 'compile', 'cpu', 'cuda', 'delete_all_unused_submodules', 'delete_submodule',
    'double', 'dump_patches', 'eval', 'extra_repr', 'float', 'forward', 'get_buffer', 'get_extra_state',
    'get_parameter', 'get_submodule', 'graph', 'half', 'ipu', 'load_state_dict', 'meta', 'modules', 'mtia',
    'named_buffers', 'named_children', 'named_modules', 'named_parameters', 'parameters', 'print_readable',
    'recompile', 'register_backward_hook', 'register_buffer', 'register_forward_hook',
    'register_forward_pre_hook', 'register_full_backward_hook', 'register_full_backward_pre_hook',
    'register_load_state_dict_post_hook', 'register_load_state_dict_pre_hook', 'register_module',
    'register_parameter', 'register_state_dict_post_hook', 'register_state_dict_pre_hook', 'requires_grad_',
    'set_extra_state', 'set_submodule', 'shape_env', 'share_memory', 'state_dict', 'to', 'to_empty',
    'to_folder', 'train', 'training', 'type', 'xpu', 'zero_grad'
))
"""Attributes (methods, properties, instance state) of nn.Module and fx.GraphModule, dunders aside."""


def why_reserved(name: str, what: str) -> str | None:
    """Why `name` cannot name a node (`what` = "node") or a graph input ("input"), or None if it can."""
    if keyword.iskeyword(name):
        return f"'{name}' is a Python keyword"
    if name.startswith("__") and name.endswith("__"):
        return f"'{name}' is a Python special name"
    if name == "self":
        return "'self' is the module itself in the generated forward"
    if what == "node" and name in MODULE_ATTRIBUTES:
        return f"'{name}' is an attribute of every torch module (nn.Module / fx.GraphModule)"
    return None

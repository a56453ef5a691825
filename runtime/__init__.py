"""Training runtime for any pair of ``G(z, y)`` / ``D(x, y)`` torch modules.

Never imports ``compiler`` or ``zoo``; submodules are imported on demand so that importing this
package stays cheap.
"""


class UserError(Exception):
    """A mistake the user can fix (bad data folder, corrupt checkpoint, ...).

    The CLI prints the message and exits with code 1, without a traceback.
    """

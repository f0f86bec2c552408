"""Output: frames to video files (:mod:`.video`) through ffmpeg (:mod:`.ffmpeg_pipe`), in a format
from the table (:mod:`.video_formats`), with the workflow embedded (:mod:`.video_metadata`), sound
(:mod:`.audio`), and file names that never overwrite (:mod:`.output_paths`)."""

in vec3 in_pos;
in vec3 in_normal;
in mat4 i_mvp;
in vec4 i_n0;     // normal matrix rows (occluders are scaled unevenly)
in vec4 i_n1;
in vec4 i_n2;
in vec4 i_color;  // sRGB, w = patterned
in vec4 i_info;   // atlas cell, batch slot, pattern scale
in vec4 i_post;   // contrast, illumination

out vec3 v_diffuse;
out vec3 v_obj;
flat out vec4 v_color;
flat out float v_scale;
flat out vec2 v_post;
out float gl_ClipDistance[4];

void main() {
    vec4 p = i_mvp * vec4(in_pos, 1.0);
    gl_ClipDistance[0] = p.w - p.x;
    gl_ClipDistance[1] = p.w + p.x;
    gl_ClipDistance[2] = p.w - p.y;
    gl_ClipDistance[3] = p.w + p.y;
    gl_Position = to_cell(p, i_info.x);
    vec3 n = vec3(dot(i_n0.xyz, in_normal), dot(i_n1.xyz, in_normal), dot(i_n2.xyz, in_normal));
    vec3 spec;
    // occluders sit in view space in front of the model: light them with the sample's lights
    light_vertex(int(i_info.y), n, vec3(0.0, 0.0, -1.0), 0.0, 1.0, v_diffuse, spec);
    v_obj = in_pos;
    v_color = i_color;
    v_scale = i_info.z;
    v_post = i_post.xy;
}
